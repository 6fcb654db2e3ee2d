// layout.mjs - node-mavlink's generated common.xml definitions of the messages
// src/mavlink knows, as JSON: {msgid: {name, crc_extra, base_len, fields:[[name, type, offset, ext]]}}.
// tests/integration/test_mavlink.py compares them with the table in src/mavlink/mavlink.c.
import { minimal, common } from 'node-mavlink'
const ids = [0, 1, 24, 30, 33, 74, 75, 76, 77, 147, 242, 253]
const all = { ...minimal.REGISTRY, ...common.REGISTRY }
const res = {}
for (const id of ids) {
  const c = all[id]
  res[id] = {
    name: c.MSG_NAME,
    crc_extra: c.MAGIC_NUMBER,
    base_len: c.FIELDS.filter(f => !f.extension).reduce((a, f) => a + f.size * (f.length || 1), 0),
    fields: c.FIELDS.map(f => [f.source, f.type, f.offset, !!f.extension]),
  }
}
process.stdout.write(JSON.stringify(res))
