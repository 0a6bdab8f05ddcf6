import Docker from 'dockerode';

/**
 * A Docker client for `host` (a DOCKER_HOST-style URL: unix:///path or tcp://host:port), else DOCKER_HOST, else the
 * local socket. Every call times out: during a Raft election `GET /info` and `GET /nodes` block until a leader exists.
 */
export function createDocker(host = process.env.DOCKER_HOST, timeoutMs = 5000): Docker {
  if (!host || host.startsWith('unix://')) {
    return new Docker({ socketPath: host ? host.slice('unix://'.length) : '/var/run/docker.sock', timeout: timeoutMs });
  }
  const url = new URL(host.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http', timeout: timeoutMs });
}
