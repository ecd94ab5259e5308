import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { DevnetError } from '../errors.js'
import type { ContainerPlan, ContainerWait } from './plan.js'

// testcontainers is an optional dependency: typed structurally here so the package neither needs
// it to type-check nor loads it unless the containers provider is chosen.
type Started = {
  getHost(): string
  getMappedPort(port: number): number
  exec(command: string[]): Promise<{ output: string; exitCode: number }>
  stop(options?: { timeout?: number }): Promise<unknown>
}
type Builder = {
  withEntrypoint(entrypoint: string[]): Builder
  withCommand(command: string[]): Builder
  withEnvironment(environment: Record<string, string>): Builder
  withExposedPorts(...ports: number[]): Builder
  withNetwork(network: unknown): Builder
  withNetworkAliases(...aliases: string[]): Builder
  withWaitStrategy(strategy: unknown): Builder
  withStartupTimeout(ms: number): Builder
  withLogConsumer(consumer: (stream: NodeJS.ReadableStream) => unknown): Builder
  start(): Promise<Started>
}
/** The part of the `testcontainers` module the runner uses (injectable in tests). */
export type Testcontainers = {
  GenericContainer: new (image: string) => Builder
  Network: new () => { start(): Promise<{ stop(): Promise<unknown> }> }
  Wait: {
    forLogMessage(message: string | RegExp, times?: number): unknown
    forListeningPorts(): unknown
    forHttp(path: string, port: number): { forStatusCode(status: number): unknown }
  }
  getContainerRuntimeClient(): Promise<unknown>
}

async function loadTestcontainers(): Promise<Testcontainers> {
  try {
    const name = 'testcontainers'
    // A variable specifier keeps bundlers from inlining the optional dependency.
    return (await import(name)) as Testcontainers
  } catch (error) {
    throw new DevnetError('MPPKIT_DEVNET=containers needs the optional dependency testcontainers@10', {
      code: 'devnet_containers_unavailable',
      cause: error,
    })
  }
}

/**
 * Tells whether a container engine is reachable, and if not why, without starting anything. Looks
 * for the usual Docker sockets / `DOCKER_HOST` first (cheap), then asks testcontainers.
 *
 * @example
 * ```ts
 * const runtime = await hasContainerRuntime()
 * if (!runtime.available) console.warn('[skip] ' + runtime.reason)
 * ```
 */
export async function hasContainerRuntime(): Promise<
  { available: true } | { available: false; reason: string }
> {
  const sockets = ['/var/run/docker.sock', join(homedir(), '.docker', 'run', 'docker.sock')]
  if (process.env.XDG_RUNTIME_DIR) sockets.push(join(process.env.XDG_RUNTIME_DIR, 'docker.sock'))
  const configured =
    !!process.env.DOCKER_HOST ||
    !!process.env.TESTCONTAINERS_HOST_OVERRIDE ||
    existsSync(join(homedir(), '.testcontainers.properties')) ||
    sockets.some((socket) => existsSync(socket))
  if (!configured)
    return { available: false, reason: 'no Docker engine (no DOCKER_HOST and no Docker socket found)' }
  try {
    const testcontainers = await loadTestcontainers()
    await testcontainers.getContainerRuntimeClient()
    return { available: true }
  } catch (error) {
    return {
      available: false,
      reason: `no Docker engine (${error instanceof Error ? error.message.split('\n')[0] : 'unknown error'})`,
    }
  }
}

/**
 * A started container set: each container by plan name with its host address and mapped ports,
 * its captured output, and `stop()`.
 */
export type StartedContainers = {
  containers: Record<
    string,
    {
      host: string
      port(name: string): number
      output(): string
      exec(command: string[]): Promise<{ output: string; exitCode: number }>
    }
  >
  stop(): Promise<void>
}

function waitStrategy(testcontainers: Testcontainers, wait: ContainerWait): unknown {
  if (wait.kind === 'log') return testcontainers.Wait.forLogMessage(wait.pattern, wait.times)
  if (wait.kind === 'http')
    return testcontainers.Wait.forHttp(wait.path, wait.port).forStatusCode(wait.status)
  return testcontainers.Wait.forListeningPorts()
}

/**
 * Starts the planned containers on one private Docker network (dependencies first, the rest in
 * parallel). On any failure, everything already started is stopped before the error is rethrown.
 *
 * @example
 * ```ts
 * const started = await startContainers(planContainers({ rails: ['stripe'] }))
 * const port = started.containers.stripe?.port('http')
 * await started.stop()
 * ```
 */
export async function startContainers(
  plans: readonly ContainerPlan[],
  options: { testcontainers?: Testcontainers } = {},
): Promise<StartedContainers> {
  const testcontainers = options.testcontainers ?? (await loadTestcontainers())
  const network = await new testcontainers.Network().start()
  const running: Started[] = []
  const containers: StartedContainers['containers'] = {}
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      await Promise.allSettled(running.map((container) => container.stop({ timeout: 2_000 })))
      await network.stop().catch(() => undefined)
    })()
    return stopping
  }
  const startOne = async (plan: ContainerPlan) => {
    let output = ''
    let builder = new testcontainers.GenericContainer(plan.image)
      .withCommand(plan.command)
      .withEnvironment(plan.environment)
      .withExposedPorts(...plan.ports.map((port) => port.container))
      .withNetwork(network)
      .withNetworkAliases(plan.name)
      .withWaitStrategy(waitStrategy(testcontainers, plan.wait))
      .withStartupTimeout(plan.startupTimeoutMs)
      .withLogConsumer((stream) => {
        stream.on('data', (chunk: Buffer | string) => {
          if (output.length < 256_000) output += chunk.toString()
        })
      })
    if (plan.entrypoint) builder = builder.withEntrypoint(plan.entrypoint)
    const started = await builder.start()
    running.push(started)
    containers[plan.name] = {
      host: started.getHost(),
      port: (name) => {
        const port = plan.ports.find((entry) => entry.name === name)
        if (!port)
          throw new DevnetError(`container ${plan.name} exposes no port named ${name}`, {
            code: 'devnet_containers_failed',
          })
        return started.getMappedPort(port.container)
      },
      output: () => output,
      exec: (command) => started.exec(command),
    }
  }
  try {
    const pending = new Map(plans.map((plan) => [plan.name, plan]))
    // Start in waves: every plan whose dependencies are up starts in parallel with its peers.
    while (pending.size > 0) {
      const ready = [...pending.values()].filter((plan) => plan.dependsOn.every((name) => name in containers))
      if (ready.length === 0)
        throw new DevnetError('container plan has an unsatisfiable dependency', {
          code: 'devnet_containers_failed',
        })
      for (const plan of ready) pending.delete(plan.name)
      await Promise.all(ready.map(startOne))
    }
  } catch (error) {
    await stop()
    throw error
  }
  return { containers, stop }
}
