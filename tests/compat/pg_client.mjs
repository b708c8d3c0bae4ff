// node-postgres (npm pg) through the gateway: every scenario of tests/compat, one JSON line each.
import pg from 'pg'
import { from as copyFrom, to as copyTo } from 'pg-copy-streams'
import { pipeline } from 'node:stream/promises'
import { Readable, Writable } from 'node:stream'
import { adminUrl, expect, gateway, packageVersion, scenario, sleep } from './scenarios.mjs'

async function connect() {
  const client = new pg.Client(gateway)
  client.errors = []
  client.on('error', (error) => client.errors.push(error))
  await client.connect()
  return client
}

function submit(client, query) {
  return new Promise((resolve, reject) => {
    query.on('error', reject)
    query.on('end', resolve)
    client.query(query)
  })
}

await scenario('connect', async () => {
  const client = await connect()
  const { rows } = await client.query('SELECT current_user AS who')
  await client.end()
  expect(rows.length === 1, 'no row')
  return { version: packageVersion('pg') }
})

const client = await connect()

await scenario('simple', async () => {
  const results = await client.query("SELECT 1 AS a; SELECT 'two' AS b")
  expect(results.length === 2 && results[0].rows[0].a === 1 && results[1].rows[0].b === 'two', JSON.stringify(results.map((r) => r.rows)))
})

await scenario('extended', async () => {
  const { rows } = await client.query('SELECT name, $2::int + 1 AS next FROM customers WHERE id = $1', [5, 41])
  expect(rows[0].name.endsWith(' 5') && rows[0].next === 42, JSON.stringify(rows))
})

await scenario('prepared', async () => {
  for (let i = 1; i <= 50; i++) {
    const { rows } = await client.query({ name: 'order_by_id', text: 'SELECT id, customer_id FROM orders WHERE id = $1', values: [i] })
    expect(rows.length === 1 && rows[0].id === i, `run ${i}: ${JSON.stringify(rows)}`)
  }
  return { executions: 50 }
})

await scenario('copy', async () => {
  await client.query('CREATE TEMP TABLE copied (a int, b text)')
  const lines = Array.from({ length: 1000 }, (_, i) => `${i}\trow ${i}\n`)
  await pipeline(Readable.from(lines), client.query(copyFrom('COPY copied FROM STDIN')))
  const chunks = []
  await pipeline(client.query(copyTo('COPY copied TO STDOUT')), new Writable({ write(chunk, _, done) { chunks.push(chunk); done() } }))
  const out = Buffer.concat(chunks).toString().split('\n').filter(Boolean)
  expect(out.length === 1000 && out[999] === '999\trow 999', `got ${out.length} lines`)
  return { rows_in: 1000, rows_out: out.length }
})

let notified = {}
await scenario('notify', async () => {
  const received = new Promise((resolve) => client.once('notification', resolve))
  await client.query('LISTEN compat')
  await client.query("NOTIFY compat, 'hello'")
  const message = await received
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid')
  notified = { notification_pid: message.processId, backend_pid: rows[0].pid, driver_pid: client.processID }
  expect(message.payload === 'hello' && message.channel === 'compat', JSON.stringify(message))
  return notified
})

await scenario('notify_pid', async () => {
  const { notification_pid: n, backend_pid: b, driver_pid: d } = notified
  expect(n === b && b === d, `notification ${n}, pg_backend_pid() ${b}, driver ${d}`)
  return notified
})

await scenario('transaction', async () => {
  await client.query('BEGIN')
  const failed = await client.query('SELECT 1 / 0').catch((e) => e)
  const aborted = await client.query('SELECT 1').catch((e) => e)
  await client.query('ROLLBACK')
  const { rows } = await client.query('SELECT 2 AS two')
  expect(failed.code === '22012' && aborted.code === '25P02' && rows[0].two === 2, `${failed.code} ${aborted.code}`)
})

await scenario('savepoint', async () => {
  await client.query('CREATE TEMP TABLE saved (a int)')
  await client.query('BEGIN')
  await client.query('INSERT INTO saved VALUES (1)')
  await client.query('SAVEPOINT s')
  const failed = await client.query('INSERT INTO saved VALUES (1 / 0)').catch((e) => e)
  await client.query('ROLLBACK TO SAVEPOINT s')
  await client.query('INSERT INTO saved VALUES (2)')
  await client.query('COMMIT')
  const { rows } = await client.query('SELECT array_agg(a ORDER BY a) AS a FROM saved')
  expect(failed.code === '22012' && JSON.stringify(rows[0].a) === '[1,2]', JSON.stringify(rows))
})

await scenario('cancel', async () => {
  const query = new pg.Query('SELECT pg_sleep(30)')
  const started = Date.now()
  const running = submit(client, query).then(() => null, (e) => e)
  await sleep(500)
  new pg.Client(gateway).cancel(client, query)
  const error = await running
  const { rows } = await client.query('SELECT 3 AS three')
  expect(error?.code === '57014' && rows[0].three === 3, `error ${error?.code} ${error?.message}`)
  return { seconds: (Date.now() - started) / 1000 }
})

await client.end()

await scenario('terminate', async () => {
  const victim = await connect()
  const { rows } = await victim.query('SELECT pg_backend_pid() AS pid')
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid])
  await admin.end()
  await sleep(500)
  const next = await victim.query('SELECT 1').catch((e) => e)
  const codes = [...victim.errors.map((e) => e.code), next?.code]
  expect(codes.includes('57P01'), `codes ${JSON.stringify(codes)}: ${victim.errors.map((e) => e.message)} / ${next?.message}`)
  return { codes }
})
