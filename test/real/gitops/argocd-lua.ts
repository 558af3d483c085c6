// Runs an Argo CD resource health script in a real Lua 5.1 interpreter the way Argo CD calls it
// (argo-cd util/lua/lua.go, read for these facts, nothing copied):
// - the object is the global `obj`: the unstructured object with maps as tables, lists as tables
//   indexed from 1, numbers as Lua numbers, and JSON null as nil;
// - the script runs as one chunk; its return value must be a table, whose `status` must be one of
//   Argo CD's health codes (anything else becomes Unknown, "Lua returned an invalid health status");
// - without `useOpenLibs` the VM has only the base, package and table libraries plus an `os` with
//   just `time` and `date`: no `string`, `math`, `io` or `debug`, and so no string methods either.
import { spawn } from 'node:child_process';

export const ARGOCD_HEALTH_CODES = ['Unknown', 'Progressing', 'Suspended', 'Healthy', 'Degraded', 'Missing'] as const;

export interface HealthStatus {
  readonly status: string;
  readonly message: string;
}

/** A Lua 5.1 expression that evaluates to `value` decoded the way Argo CD's decodeValue does. */
export function luaLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`not a JSON number: ${value}`);
    return String(value);
  }
  if (typeof value === 'string') return luaString(value);
  if (Array.isArray(value)) return `{${value.map(luaLiteral).join(', ')}}`;
  if (typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `[${luaString(k)}] = ${luaLiteral(v)}`)
      .join(', ')}}`;
  }
  throw new Error(`cannot pass a ${typeof value} to Lua`);
}

function luaString(s: string): string {
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += '\\\\';
    // Decimal escapes for control bytes and everything non-ASCII: Lua 5.1 strings are bytes.
    else if (byte < 0x20 || byte >= 0x7f) out += `\\${byte}`;
    else out += String.fromCharCode(byte);
  }
  return `${out}"`;
}

/** A long bracket `[==[…]==]` whose level does not occur in the text. */
function longString(text: string): string {
  let level = 0;
  while (text.includes(`]${'='.repeat(level)}]`)) level += 1;
  const eq = '='.repeat(level);
  // A newline right after the opening bracket is skipped by Lua; add one so a leading newline survives.
  return `[${eq}[\n${text}]${eq}]`;
}

function harness(script: string, obj: unknown): string {
  return `
local script = ${longString(script)}
local env = {}
for _, name in ipairs({ "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
  "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack",
  "xpcall", "require", "module", "_VERSION" }) do
  env[name] = _G[name]
end
env.table = table
env.os = { time = os.time, date = os.date }
env._G = env
env.obj = ${luaLiteral(obj)}
local chunk, err = loadstring(script, "health.lua")
if not chunk then
  io.stderr:write("syntax: " .. err)
  os.exit(2)
end
setfenv(chunk, env)
-- String methods come from the string metatable; Argo CD's VM has none without the string library.
local strings = getmetatable("")
local index = strings.__index
strings.__index = nil
local ok, result = pcall(chunk)
strings.__index = index
if not ok then
  io.stderr:write("runtime: " .. tostring(result))
  os.exit(3)
end
if type(result) ~= "table" then
  io.stderr:write("expect table output from Lua script, not " .. type(result))
  os.exit(4)
end
if result.status ~= nil and type(result.status) ~= "string" then os.exit(5) end
if result.message ~= nil and type(result.message) ~= "string" then os.exit(5) end
io.write(result.status or "", "\\n", result.message or "")
`;
}

/** The health Argo CD would report for `obj` with this script (errors are thrown, as Argo CD returns them). */
export function argoHealth(lua: string, script: string, obj: unknown): Promise<HealthStatus> {
  return runProgram(lua, harness(script, obj));
}

function runProgram(lua: string, program: string): Promise<HealthStatus> {
  return new Promise((resolve, reject) => {
    const child = spawn(lua, ['-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`health script failed in ${lua} (exit ${code}): ${err}`));
        return;
      }
      const newline = out.indexOf('\n');
      const status = out.slice(0, newline);
      const message = out.slice(newline + 1);
      resolve(
        (ARGOCD_HEALTH_CODES as readonly string[]).includes(status)
          ? { status, message }
          : { status: 'Unknown', message: 'Lua returned an invalid health status' },
      );
    });
    child.stdin.end(program);
  });
}
