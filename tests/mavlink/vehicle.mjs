// vehicle.mjs - a simulated MAVLink vehicle for tests/integration/test_mavlink.py,
// written with an implementation we did not write: npm node-mavlink (framing,
// CRC, serialization) and mavlink-mappings (the common.xml definitions).
//
//   node vehicle.mjs --port GATEWAY_UDP_PORT [--sysid N] [--v1]
//   node vehicle.mjs --ws [--sysid N]
//   ... --key HEX64: every packet is signed (link id 1; node-mavlink's signer)
//
// One UDP socket (the vehicle's address). With --ws nothing goes over UDP:
// each datagram is printed as {"packet": "<hex>"} (the test carries it in a
// mavlink2 WebSocket binary frame) and `feed HEX` hands the vehicle what the
// gateway sent on the WebSocket. Commands on stdin, one per line;
// after each, a line {"done": "<command>"} on stdout (tests synchronise on it):
//   hb [BASE_MODE SYSTEM_STATUS]     HEARTBEAT (quadrotor, PX4)
//   pos LAT LON ALT_M [HDG_DEG]      GLOBAL_POSITION_INT (vx=300, vy=400 cm/s)
//   sys BATTERY_PCT                  SYS_STATUS battery_remaining
//   bat BATTERY_PCT                  BATTERY_STATUS id 0 battery_remaining
//   vfr GROUNDSPEED HEADING CLIMB    VFR_HUD
//   batch LAT LON ALT                HEARTBEAT + SYS_STATUS + GLOBAL_POSITION_INT in ONE datagram
//   badcrc LAT LON ALT               GLOBAL_POSITION_INT with its CRC broken
//   trunc LAT LON ALT                GLOBAL_POSITION_INT cut short by 5 bytes
//   unknown                          a valid frame of a message the gateway does not know
//   garbage N                        N datagrams of 1400 random bytes
//   spoof N                          HEARTBEATs of N distinct sysids, each from a fresh socket
//   cmdlong CMD TARGET_SYSID         a COMMAND_LONG (as a ground station would send it)
//   badsig CMD...                    CMD with its packets signed with another key
//   nosign CMD...                    CMD with its packets unsigned
//   replay                           the last datagram sent, again (same signature timestamp)
//   quit
// Every packet the gateway sends us is printed: {"recv":"HEARTBEAT","sysid":255,...};
// COMMAND_LONG / COMMAND_INT are answered with COMMAND_ACK (result from
// `ackmode RESULT|none`, default 0 = ACCEPTED).
import dgram from 'node:dgram'
import readline from 'node:readline'
import crypto from 'node:crypto'
import { MavLinkProtocolV1, MavLinkProtocolV2, MavLinkPacketSplitter, MavLinkPacketParser, MavLinkPacketSignature, minimal, common, ardupilotmega } from 'node-mavlink'
import { Readable } from 'node:stream'

const args = process.argv.slice(2)
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def }
const port = Number(opt('--port'))
const sysid = Number(opt('--sysid', '7'))
const v1 = args.includes('--v1')
const wsMode = args.includes('--ws')
const key = opt('--key') ? Buffer.from(opt('--key'), 'hex') : null
const proto = v1 ? new MavLinkProtocolV1(sysid, 1) : new MavLinkProtocolV2(sysid, 1)
const sproto = new MavLinkProtocolV2(sysid, 1, MavLinkProtocolV2.IFLAG_SIGNED)
let signMode = key ? 'key' : 'none'
let lastTs = 0
let lastSent = null
const REGISTRY = { ...minimal.REGISTRY, ...common.REGISTRY, ...ardupilotmega.REGISTRY }
let seq = 0
let ackmode = 0
const out = (o) => process.stdout.write(JSON.stringify(o, (k, v) => typeof v === 'bigint' ? Number(v) : v) + '\n')

const sock = dgram.createSocket('udp4')
function ser(msg, p = proto) {
  if (signMode === 'none' || p !== proto) return p.serialize(msg, seq++ & 255)
  const k = signMode === 'bad' ? Buffer.alloc(32, 7) : key
  const b = sproto.sign(sproto.serialize(msg, seq++ & 255), 1, k)
  // strictly increasing timestamps (node-mavlink's default is Date.now(): ms)
  const sig = new MavLinkPacketSignature(b)
  lastTs = Math.max(sig.timestamp, lastTs + 1)
  sig.timestamp = lastTs
  sig.signature = sig.calculate(k)
  return b
}
const send = (buf, s = sock) => (lastSent = buf, wsMode) ? Promise.resolve(out({ packet: buf.toString('hex') }))
  : new Promise((res, rej) => s.send(buf, port, '127.0.0.1', (e) => e ? rej(e) : res()))

function heartbeat(baseMode = 0x81 /* custom mode enabled + armed */, state = minimal.MavState.ACTIVE) {
  const hb = new minimal.Heartbeat()
  hb.type = minimal.MavType.QUADROTOR
  hb.autopilot = minimal.MavAutopilot.PX4
  hb.baseMode = baseMode
  hb.customMode = 0
  hb.systemStatus = state
  hb.mavlinkVersion = 3
  return hb
}
function gpi(lat, lon, alt, hdg) {
  const m = new common.GlobalPositionInt()
  m.timeBootMs = 1000
  m.lat = Math.round(lat * 1e7)
  m.lon = Math.round(lon * 1e7)
  m.alt = Math.round(alt * 1000)
  m.relativeAlt = 0
  m.vx = 300; m.vy = 400; m.vz = -50
  m.hdg = hdg === undefined ? 65535 : Math.round(hdg * 100)
  return m
}
function sysStatus(batt) {
  const m = new common.SysStatus()
  m.batteryRemaining = batt
  m.voltageBattery = 12000
  m.currentBattery = -1
  return m
}

// what the gateway sends us
const splitter = new MavLinkPacketSplitter()
const parser = new MavLinkPacketParser()
const feed = new Readable({ read() {} })
feed.pipe(splitter).pipe(parser)
parser.on('data', async (packet) => {
  const cls = REGISTRY[packet.header.msgid]
  if (!cls) { out({ recv: 'UNKNOWN', msgid: packet.header.msgid }); return }
  const data = packet.protocol.data(packet.payload, cls)
  const o = { recv: cls.MSG_NAME, sysid: packet.header.sysid, compid: packet.header.compid, signed: !!packet.signature,
              sigok: !!(packet.signature && key && packet.signature.matches(key)) }
  for (const f of cls.FIELDS) o[f.name] = data[f.name]
  out(o)
  if ((cls.MSG_NAME === 'COMMAND_LONG' || cls.MSG_NAME === 'COMMAND_INT') && ackmode !== 'none') {
    const ack = new common.CommandAck()
    ack.command = data.command
    ack.result = ackmode
    ack.targetSystem = packet.header.sysid
    ack.targetComponent = packet.header.compid
    await send(ser(ack))
  }
})
sock.on('message', (buf) => feed.push(buf))

const rl = readline.createInterface({ input: process.stdin })
sock.bind(0, '127.0.0.1', () => {
  out({ ready: true, port: sock.address().port })
  let chain = Promise.resolve()   // one line at a time, in order
  rl.on('line', (line) => { chain = chain.then(async () => { await handle(line); out({ done: line }) }) })
})

async function handle(line) {
    const [cmd, ...a] = line.trim().split(/\s+/)
    const n = a.map(Number)
    switch (cmd) {
      case 'hb': await send(ser(a.length ? heartbeat(n[0], n[1]) : heartbeat())); break
      case 'pos': await send(ser(gpi(n[0], n[1], n[2], a[3] === undefined ? undefined : n[3]))); break
      case 'sys': await send(ser(sysStatus(n[0]))); break
      case 'bat': {
        const m = new common.BatteryStatus()
        m.id = 0; m.batteryRemaining = n[0]; m.voltages = new Array(10).fill(65535); m.voltagesExt = [0, 0, 0, 0]
        await send(ser(m)); break
      }
      case 'vfr': {
        const m = new common.VfrHud()
        m.groundspeed = n[0]; m.heading = n[1]; m.climb = n[2]; m.airspeed = n[0]; m.alt = 0; m.throttle = 50
        await send(ser(m)); break
      }
      case 'batch': await send(Buffer.concat([ser(heartbeat()), ser(sysStatus(55)), ser(gpi(n[0], n[1], n[2]))])); break
      case 'badcrc': { const b = ser(gpi(n[0], n[1], n[2])); b[b.length - 1] ^= 0x5a; await send(b); break }
      case 'trunc': { const b = ser(gpi(n[0], n[1], n[2])); await send(b.subarray(0, b.length - 5)); break }
      case 'unknown': {
        // ardupilotmega SENSOR_OFFSETS (150): valid frame, not a common.xml message
        const m = new ardupilotmega.SensorOffsets()
        m.magOfsX = 1
        await send(ser(m)); break
      }
      case 'garbage': for (let i = 0; i < n[0]; i++) await send(crypto.randomBytes(1400)); break
      case 'spoof': {
        for (let i = 0; i < n[0]; i++) {
          const s = dgram.createSocket('udp4')
          await new Promise((res) => s.bind(0, '127.0.0.1', res))
          await send(new MavLinkProtocolV2(1 + (i % 250), 1).serialize(heartbeat(), 0), s)
          s.close()
        }
        break
      }
      case 'feed': feed.push(Buffer.from(a[0], 'hex')); await new Promise((res) => setImmediate(res)); break
      case 'ackmode': ackmode = a[0] === 'none' ? 'none' : n[0]; break
      case 'badsig': case 'nosign': {
        const was = signMode
        signMode = cmd === 'badsig' ? 'bad' : 'none'
        try { await handle(a.join(' ')) } finally { signMode = was }
        break
      }
      case 'replay': await send(lastSent); break
      case 'cmdlong': {
        const m = new common.CommandLong()
        m.command = n[0]; m.targetSystem = n[1]; m.targetComponent = 1; m.confirmation = 0
        m._param1 = 0; m._param2 = 0; m._param3 = 0; m._param4 = 0; m._param5 = 0; m._param6 = 0; m._param7 = 0
        await send(ser(m)); break
      }
      case 'quit': out({ done: line }); rl.close(); sock.close(); process.exit(0)
    }
}
