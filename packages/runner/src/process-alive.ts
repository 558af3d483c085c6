/**
 * Whether a process of this machine is alive: signal 0 checks without touching it. EPERM means it
 * exists but belongs to another user, which is alive too.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
