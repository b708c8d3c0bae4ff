// Shared by the Node.js client programs of the compatibility suite: run named scenarios, print one JSON line each.
import { readFileSync } from 'node:fs'

export const gateway = {
  host: process.env.GW_HOST,
  port: Number(process.env.GW_PORT),
  database: process.env.GW_DB,
  user: process.env.GW_USER,
  password: process.env.GW_PASSWORD,
}
export const adminUrl = process.env.ADMIN_URL

export function packageVersion(name) {
  const url = new URL(`./node_modules/${name}/package.json`, import.meta.url)
  return JSON.parse(readFileSync(url, 'utf8')).version
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// Run fn; it returns details (merged into the line) and throws on failure. ok is false when it threw or set ok: false.
export async function scenario(name, fn) {
  let record
  try {
    const details = (await withTimeout(Promise.resolve().then(fn), 20000, name)) ?? {}
    record = { scenario: name, ok: true, ...details }
  } catch (error) {
    record = { scenario: name, ok: false, error: String(error?.message ?? error), code: error?.code }
  }
  process.stdout.write(JSON.stringify(record) + '\n')
}

export function expect(condition, message) {
  if (!condition) throw new Error(message)
}
