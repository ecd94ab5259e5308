/** A hash of everything `npm pack` in packages/`name` reads (files, root manifest and ignore files, npm). */
export function packageHash(name: string): Promise<string>
/**
 * The tarball `npm pack` makes of packages/`name`, as a file in `folder`, from a cache in os.tmpdir()
 * keyed by {@link packageHash}; resolves its path.
 */
export function packCached(name: string, folder: string): Promise<string>
