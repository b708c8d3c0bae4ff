// postgres.js (npm postgres, porsager) through the gateway: every scenario of tests/compat, one JSON line each.
import postgres from 'postgres'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { adminUrl, expect, gateway, packageVersion, scenario, sleep } from './scenarios.mjs'

const options = { ...gateway, username: gateway.user, ssl: false, max: 1, onnotice: () => {} }
const caught = (promise) => promise.then(() => null, (e) => e)

await scenario('connect', async () => {
  const sql = postgres(options)
  const [row] = await sql`SELECT current_user AS who`
  await sql.end()
  expect(row.who, 'no row')
  return { version: packageVersion('postgres') }
})

const sql = postgres(options)

await scenario('simple', async () => {
  const results = await sql.unsafe("SELECT 1 AS a; SELECT 'two' AS b").simple()
  expect(results.length === 2 && results[0][0].a === 1 && results[1][0].b === 'two', JSON.stringify(results))
})

await scenario('extended', async () => {
  const rows = await sql`SELECT name, ${41}::int + 1 AS next FROM customers WHERE id = ${5}`
  expect(rows[0].name.endsWith(' 5') && rows[0].next === 42, JSON.stringify(rows))
})

await scenario('prepared', async () => {
  for (let i = 1; i <= 50; i++) {
    const rows = await sql`SELECT id, customer_id FROM orders WHERE id = ${i}`
    expect(rows.length === 1 && rows[0].id === i, `run ${i}: ${JSON.stringify(rows)}`)
  }
  const [row] = await sql`SELECT count(*)::int AS n FROM pg_prepared_statements`
  expect(row.n >= 1, 'no server-side prepared statement')
  return { executions: 50, server_prepared: row.n }
})

await scenario('copy', async () => {
  await sql`CREATE TEMP TABLE copied (a int, b text)`
  const lines = Array.from({ length: 1000 }, (_, i) => `${i}\trow ${i}\n`)
  await pipeline(Readable.from(lines), await sql`COPY copied FROM STDIN`.writable())
  const chunks = []
  for await (const chunk of await sql`COPY copied TO STDOUT`.readable()) chunks.push(chunk)
  const out = Buffer.concat(chunks).toString().split('\n').filter(Boolean)
  expect(out.length === 1000 && out[999] === '999\trow 999', `got ${out.length} lines`)
  return { rows_in: 1000, rows_out: out.length }
})

await scenario('notify', async () => {
  let resolve
  const received = new Promise((r) => { resolve = r })
  const listening = await sql.listen('compat', (payload) => resolve(payload))
  await sql.notify('compat', 'hello')
  const payload = await received
  await listening.unlisten()
  expect(payload === 'hello', payload)
})

await scenario('transaction', async () => {
  let failed, aborted
  const outcome = await caught(sql.begin(async (tx) => {
    failed = await caught(tx`SELECT 1 / 0`)
    aborted = await caught(tx`SELECT 1`)
    throw new Error('roll back')
  }))
  const [row] = await sql`SELECT 2 AS two`
  expect(failed?.code === '22012' && aborted?.code === '25P02' && outcome?.message === 'roll back' && row.two === 2,
    `${failed?.code} ${aborted?.code} ${outcome?.message}`)
})

await scenario('savepoint', async () => {
  await sql`CREATE TEMP TABLE saved (a int)`
  let failed
  await sql.begin(async (tx) => {
    await tx`INSERT INTO saved VALUES (1)`
    failed = await caught(tx.savepoint((sp) => sp`INSERT INTO saved VALUES (1 / 0)`))
    await tx`INSERT INTO saved VALUES (2)`
  })
  const [row] = await sql`SELECT array_agg(a ORDER BY a) AS a FROM saved`
  expect(failed?.code === '22012' && JSON.stringify(row.a) === '[1,2]', JSON.stringify(row))
})

await scenario('cancel', async () => {
  const started = Date.now()
  const query = sql`SELECT pg_sleep(30)`
  const running = caught(query)
  await sleep(500)
  query.cancel()
  const error = await running
  const [row] = await sql`SELECT 3 AS three`
  expect(error?.code === '57014' && row.three === 3, `error ${error?.code} ${error?.message}`)
  return { seconds: (Date.now() - started) / 1000 }
})

await sql.end()

// postgres.js hides a lost connection: against PostgreSQL too, the next query runs on a new connection.
await scenario('terminate', async () => {
  const victim = postgres(options)
  const [{ pid }] = await victim`SELECT pg_backend_pid() AS pid`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin`SELECT pg_terminate_backend(${pid})`
  await admin.end()
  await sleep(500)
  const [next] = await victim`SELECT pg_backend_pid() AS pid`
  await victim.end()
  expect(next.pid !== pid, `still on backend ${pid}`)
  return { terminated: pid, reconnected: next.pid }
})
