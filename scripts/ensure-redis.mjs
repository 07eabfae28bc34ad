// Runs after `npm install`: the zero-setup default starts a private redis-server from the system's
// package when REDIS_URL is unset. npm has no offline Redis, so we add Debian's package when we can.
import { execSync, spawnSync } from 'node:child_process';

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

if (!has('redis-server')) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && has('apt-get')) {
    console.log('program-enrollments: installing redis-server from Debian packages');
    try {
      execSync(
        'apt-get install -y --no-install-recommends redis-server || (apt-get update && apt-get install -y --no-install-recommends redis-server)',
        { stdio: 'inherit' },
      );
    } catch {
      console.warn('program-enrollments: could not install redis-server; run: sudo apt-get install -y redis-server');
    }
  } else {
    console.warn(
      'program-enrollments: redis-server is not installed. Install it with: sudo apt-get install -y redis-server (or set REDIS_URL)',
    );
  }
}
