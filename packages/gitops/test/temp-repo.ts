import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A throw-away git repository in the OS temp folder, for tests of history-based commands. */
export class TempRepo {
  readonly root: string;

  constructor(prefix = 'tunepipe-gitops-test-') {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    this.git('init', '--quiet', '--initial-branch=main');
  }

  git(...args: string[]): string {
    return execFileSync('git', ['-c', 'user.name=tunepipe test', '-c', 'user.email=test@tunepipe.invalid', '-c', 'commit.gpgsign=false', ...args], {
      cwd: this.root,
      encoding: 'utf8',
    });
  }

  write(path: string, content: string): void {
    const abs = join(this.root, path);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, content);
  }

  commit(message: string): string {
    this.git('add', '--all');
    this.git('commit', '--quiet', '-m', message);
    return this.git('rev-parse', 'HEAD').trim();
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
