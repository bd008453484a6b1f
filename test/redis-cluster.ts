import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';

// A throwaway three-master Redis Cluster on loopback, for the tests that prove Tally's scripts
// keep to one hash slot. It needs redis-server and redis-cli (CI installs them).

const run = promisify(execFile);

export interface TestCluster {
  nodes: { host: string; port: number }[];
  client(): Cluster;
  stop(): Promise<void>;
}

export async function startTestCluster(basePort = 17_000 + Math.floor(Math.random() * 2000) * 3): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-cluster-'));
  const ports = [basePort, basePort + 1, basePort + 2];
  const procs: ChildProcess[] = ports.map((port) =>
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = async () => {
    for (const p of procs) p.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      for (let i = 0; ; i++) {
        try {
          await run('redis-cli', ['-p', String(port), 'ping']);
          break;
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    // Every node must know the whole slot map before a client asks it (else MOVED storms and
    // "slots allocation" errors in a client's first commands).
    for (const port of ports) {
      for (let i = 0; ; i++) {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
        if (
          stdout.includes('cluster_state:ok') &&
          stdout.includes('cluster_slots_assigned:16384') &&
          stdout.includes('cluster_known_nodes:3')
        )
          break;
        if (i > 100) throw new Error('the test cluster did not become ready');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }));
  return { nodes, client: () => new Cluster(nodes, { enableAutoPipelining: true }), stop };
}
