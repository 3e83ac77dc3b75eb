#!/usr/bin/env python3
# gen_seeds.py - writes the seed corpora of the libFuzzer targets, one
# folder per target (tests/corpus/NAME/), as valid (and a few nearly
# valid) inputs in each target's input format, so fuzzing starts deep in
# the parsers instead of at the magic number.  Run once from the repo
# root; the seeds are committed, this script documents how they were made.
#   python3 tests/corpus/gen_seeds.py
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x42554353


def u8(v): return struct.pack('<B', v)
def u16(v): return struct.pack('<H', v)
def u32(v): return struct.pack('<I', v)
def u64(v): return struct.pack('<Q', v)
def lenbytes(b): return u32(len(b)) + b


def header(op, body_len, flags=0, status=0, seq=0):
    return struct.pack('<IBBHIIQ', MAGIC, 1, flags, op, status, body_len, seq)


def frame(op, body=b'', flags=0, status=0, seq=0):
    return header(op, len(body), flags, status, seq) + body


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


NEVER = 0xffffff
BASEPOINT = b'\x09' + b'\x00' * 31          # a valid X25519 public key
FILE_ID = bytes(range(16))


def key_entry(kid, alg=1, usage=3, nb=0, na=NEVER):
    return u32(kid) + u8(alg) + u8(usage) + u32(nb) + u32(na)


def batch(key, alg, secs):
    b = u32(key) + u8(alg) + FILE_ID + u32(len(secs))
    for idx, ln in secs:
        b += u64(idx) + u32(ln)
    return b


# ---- fuzz_firmware_device_frame: byte 0 picks the mode; modes 2/3 are op u16,
# flags u8, body, MACed by the harness on the admin / user session.
def device_frame():
    t = 'fuzz_firmware_device_frame'
    ops = {
        'hello': (1, b''),
        'logout': (4, b''),
        'set_pin': (5, u8(1) + lenbytes(b'\x55' * 21)),
        'keygen': (10, key_entry(100)),
        'keygen_kw': (10, key_entry(101, 3, 0x0c)),
        'destroy': (11, u32(100)),
        'info': (12, u32(1)),
        'list': (13, u32(0) + u32(16)),
        'set_attrs': (14, u32(1) + u8(1) + u32(0) + u32(NEVER)),
        'export': (15, u32(4) + u32(1)),
        'import': (16, u32(4) + lenbytes(b'\xa6' * 56)),
        'channel': (17, u32(200) + BASEPOINT + lenbytes(b'ctx')),
        'seal': (20, batch(1, 1, [(0, 16), (1, 16)]) + lenbytes(b'p' * 32)),
        'seal_ctr': (20, batch(2, 2, [(7, 100)]) + lenbytes(b'q' * 100)),
        'open': (21, batch(1, 1, [(0, 16)]) + lenbytes(b'\x01' * 44)),
        'open_hdr': (21, batch(3, 5, [(2**64 - 1, 48)]) + lenbytes(b'\x02' * 76)),
        'siv_enc': (22, u32(1) + lenbytes(b'dir-id') + lenbytes(b'name.txt')),
        'siv_dec': (23, u32(1) + lenbytes(b'dir-id') + lenbytes(b'\x03' * 24)),
        'hmac': (24, u32(5) + lenbytes(b'data')),
        'random': (25, u32(32)),
        'digest': (26, lenbytes(b'abc')),
        'clock': (27, u64(1704067200 + 86400 * 400)),
        'selftest': (28, b''),
        'unknown': (99, b''),
    }
    for name, (op, body) in ops.items():
        write(t, 'admin_' + name, u8(2) + u16(op) + u8(0) + body)
    for name in ('info', 'seal', 'open', 'keygen', 'list', 'siv_enc'):
        op, body = ops[name]
        write(t, 'user_' + name, u8(3) + u16(op) + u8(0) + body)
    # shared memory: offsets instead of inline data
    write(t, 'admin_seal_shm', u8(2) + u16(20) + u8(2) + batch(1, 1, [(0, 4096)]) + u32(0) + u32(1 << 20))
    write(t, 'admin_open_shm', u8(2) + u16(21) + u8(2) + batch(1, 1, [(0, 4096)]) + u32(0) + u32(1 << 20))
    # no session: raw frames
    write(t, 'raw_hello', u8(0) + frame(1))
    write(t, 'raw_login', u8(0) + frame(3, u8(1) + BASEPOINT + lenbytes(b'\x00' * 24)))
    write(t, 'raw_init', u8(0) + frame(2, u8(0) + BASEPOINT + lenbytes(b'\x00' * 36) + u8(0) + u8(0)))
    write(t, 'raw_short', u8(0) + frame(1)[:13])
    write(t, 'raw_badlen', u8(0) + header(12, 9) + b'\x00' * 4)
    write(t, 'raw_mac_nosession', u8(0) + frame(12, u32(1), flags=1) + b'\x00' * 16)
    write(t, 'admin_raw_replay', u8(1) + frame(12, u32(1), flags=1, seq=1) + b'\x00' * 16)


# ---- fuzz_sefile_header: a 124-byte header (the first 12 bytes double as
# a backing size and a sector size for the geometry checks).
def sefile_header():
    t = 'fuzz_sefile_header'

    def hdr(alg, shift, length, key=7):
        clear = b'SEfile\n\x1a' + u16(1) + u8(alg) + u8(shift) + u32(key) + FILE_ID + u64(length) + b'\x00' * 8
        return clear + bytes((i * 13) & 0xff for i in range(76))

    for alg in (1, 2, 5):
        for shift, length in ((12, 0), (9, 513), (16, 1 << 40), (12, 1 << 60)):
            write(t, 'hdr_a%d_s%d_%d' % (alg, shift, length), hdr(alg, shift, length))
    write(t, 'bad_shift', hdr(1, 17, 10))
    write(t, 'bad_alg', hdr(3, 12, 10))
    write(t, 'too_long', hdr(1, 12, (1 << 60) + 1))
    write(t, 'geometry', u64(124 + 4124 * 3 + 100) + u32(4096))
    write(t, 'hole', b'\x00' * (512 + 28))


# ---- fuzz_wire_frame: a header, then a script of buffer calls and the
# buffer they run on.
def wire_frame():
    t = 'fuzz_wire_frame'
    script = bytes([0, 0, 1, 0, 2, 0, 3, 0, 4, 5, 5, 3, 6, 8, 0x80, 1, 0x81, 2, 0x82, 3,
                    0x83, 4, 0x84, 10, 0x85, 6, 0x86, 20])
    buf = bytes(range(len(script)))
    write(t, 'hello', frame(1) + script + buf)
    write(t, 'mac_seal', header(20, 1000, flags=1, seq=77) + script + buf)
    write(t, 'shm_open', header(21, 5000, flags=3, status=11, seq=2**64 - 1) + script + buf)
    write(t, 'max_body', header(13, (1 << 20) + 65536) + bytes([6, 255, 6, 0]) + u32(2) + b'xy')
    write(t, 'lenbytes', header(22, 0) + bytes([6, 2, 6, 2, 0, 0]) + u32(3) + b'abc' + u32(9))
    write(t, 'bad_magic', b'XCUB' + header(1, 0)[4:])


# ---- fuzz_cube_reply: u16 script length, script (preamble, calls), then
# reply records (structured: kind<0x80, status, sel, u16 len, body).
def rec(body=b'', status=0, sel=1):
    return u8(0) + u8(status) + u8(sel) + u16(len(body)) + body


def hello_body(state=1, role=0):
    return (b'S' * 16 + BASEPOINT + u32(1) + u8(state) + u8(role) + u8(5) + u8(10) +
            u32(0) + u32(3) + u32(41000) + u32(500000))


def cube_reply():
    t = 'fuzz_cube_reply'
    # HELLO (unMACed), LOGIN user (MACed ok), HELLO (MACed)
    login_calls = bytes([0, 0, 4, 0])
    login_reps = rec(hello_body(), sel=0) + rec() + rec(hello_body(role=1))

    def seed(name, calls, reps, preamble=0):
        script = u8(preamble) + login_calls + calls
        write(t, name, u16(len(script)) + script + login_reps + reps)

    kid = u32(42)
    seed('key_info', u8(9) + kid, rec(key_entry(42)))
    seed('key_generate', u8(1) + kid + u8(1) + u8(3), rec())
    seed('key_destroy', u8(5) + kid, rec())
    seed('key_list', u8(13) + u32(10) + u8(3), rec(u32(2) + key_entry(11) + key_entry(40)))
    seed('key_set_attrs', u8(17) + kid + u8(1), rec())
    seed('key_export', u8(21) + kid + u8(64) + u32(43), rec(lenbytes(b'\xa6' * 56)))
    seed('key_import', u8(25) + kid + u8(7), rec(u32(43)))
    seed('channel', u8(29) + kid + u8(9), rec())
    seed('seal', u8(2) + u8(0) + kid + u8(3) + u8(16), rec(lenbytes(b'\x01' * 44)))
    seed('seal2', u8(2) + u8(1) + kid + u8(0) + u8(10) + u8(1) + u8(64),
         rec(lenbytes(b'\x01' * (74 + 56))))
    seed('open', u8(6) + u8(0) + kid + u8(3) + u8(16), rec(u32(0) + lenbytes(b'\x02' * 16)))
    seed('open_bad', u8(6) + u8(1) + kid + u8(0) + u8(8) + u8(1) + u8(8),
         rec(u32(1) + u32(1) + lenbytes(b'\x02' * 16), status=11))
    seed('seal_shm', u8(2) + u8(0) + kid + u8(3) + u8(16), rec(), preamble=1)
    seed('open_shm', u8(6) + u8(0) + kid + u8(3) + u8(16), rec(u32(0)), preamble=1)
    seed('siv_encrypt', u8(3) + u8(10) + kid, rec(lenbytes(b'\x03' * 26)))
    seed('siv_decrypt', u8(7) + u8(10) + kid, rec(lenbytes(b'\x04' * 10)))
    seed('hmac', u8(11) + u8(5) + kid, rec(b'\x05' * 32))
    seed('random', u8(15) + u8(0) + u32(100), rec(lenbytes(b'\x06' * 101)))
    seed('digest', u8(19) + u8(3) + kid, rec(b'\x07' * 32))
    seed('selftest', u8(23) + u8(20) + kid, rec(u32(0) + lenbytes(b'selftest ok')))
    seed('logout', u8(8) + u8(0), rec())
    seed('set_pin', u8(12) + u8(2), rec())
    seed('clock', u8(24) + u8(30), rec())
    seed('reset', u8(20) + u8(0), rec() + rec(hello_body(state=0)))
    seed('nokey', u8(9) + kid, rec(status=7))
    seed('unmaced_refusal', u8(9) + kid + u8(9) + kid, rec(status=3, sel=0))
    seed('forged_tag', u8(9) + kid, rec(key_entry(42), sel=3))
    seed('wrong_seq', u8(9) + kid, rec(key_entry(42), sel=0x21))
    seed('wrong_op', u8(9) + kid, rec(key_entry(42), sel=0x41))
    # login refused: wrong PIN (MACed tries left), locked
    script = u8(0) + bytes([0, 0, 4, 1])
    write(t, 'wrong_pin', u16(len(script)) + script + rec(hello_body(), sel=0) + rec(u8(3), status=5))
    write(t, 'locked', u16(len(script)) + script + rec(hello_body(), sel=0) + rec(status=6))
    # factory init of a blank device
    script = u8(0) + bytes([0, 0, 16, 0x12])
    write(t, 'factory_init', u16(len(script)) + script + rec(hello_body(state=0), sel=0) +
          rec(sel=0) + rec(hello_body()))
    # raw frames as they come off the wire
    script = u8(0) + bytes([0, 0, 0, 0, 0, 0])
    raw = frame(1, hello_body(), status=0)
    write(t, 'raw_hello', u16(len(script)) + script + u8(0x80) + u16(len(raw)) + raw +
          u8(0x80) + u16(30) + raw[:30] + u8(0x80) + u16(10) + raw[:10])


# ---- fuzz_sefile_backing: config byte, 5-byte mutations, u16 write offset.
def sefile_backing():
    t = 'fuzz_sefile_backing'

    def mut(kind, a, b):
        return u8(kind) + u16(a) + u16(b)

    for cfg in range(12):
        write(t, 'clean_%02d' % cfg, u8(cfg) + u16(100))
    write(t, 'flip_header', u8(1) + mut(0, 20, 4) + u16(5))
    write(t, 'flip_sector', u8(3) + mut(0, 300, 1) + u16(0))
    write(t, 'zero_sector', u8(7) + mut(1, 124, 540) + u16(2000))
    write(t, 'cut', u8(9) + mut(2, 700, 0) + u16(300))
    write(t, 'residue', u8(11) + mut(3, 0, 300) + u16(3000))
    write(t, 'splice', u8(5) + mut(4, 200, 800) + u16(10))
    write(t, 'set_len', u8(2) + mut(5, 32, 255) + u16(1))


# ---- fuzz_fs_dirhdr: the plaintext of a directory header file (fs/internal.h).
def dirhdr(key=7, ss=4096, rcpt=b'', group=False, old_key=None, version=1):
    flags = (1 if group else 0) | (2 if old_key is not None else 0)
    b = b'SEKEYDIR' + u16(version) + u16(flags) + u32(key) + FILE_ID + u32(ss) + u32(len(rcpt))
    if old_key is not None:
        b += u32(old_key)
    return b + rcpt


def fs_dirhdr():
    t = 'fuzz_fs_dirhdr'
    write(t, 'plain', dirhdr())
    write(t, 'plain_512', dirhdr(ss=512))
    write(t, 'plain_65536', dirhdr(ss=65536))
    write(t, 'users', dirhdr(rcpt=b'alice,bob'))
    write(t, 'group', dirhdr(rcpt=b'staff', group=True))
    write(t, 'moving_users', dirhdr(rcpt=b'alice,bob,carol', old_key=5))
    write(t, 'moving_plain', dirhdr(old_key=3))
    write(t, 'moving_group', dirhdr(rcpt=b'ops', group=True, old_key=9))
    write(t, 'users_max', dirhdr(rcpt=b','.join(b'u%03d' % i for i in range(64))[:512]))
    write(t, 'bad_ss', dirhdr(ss=3000))
    write(t, 'bad_version', dirhdr(version=2))
    write(t, 'group_two', dirhdr(rcpt=b'a,b', group=True))
    write(t, 'short', dirhdr()[:39])
    write(t, 'trailing', dirhdr() + b'x')


# ---- fuzz_fs_rcpt: u8 kind (% 3: none, users, group) || the xattr value.
def fs_rcpt():
    t = 'fuzz_fs_rcpt'
    write(t, 'users', u8(1) + b'alice,bob')
    write(t, 'none_kind', u8(0) + b'alice')
    write(t, 'group', u8(2) + b'staff')
    write(t, 'group_two', u8(2) + b'a,b')
    write(t, 'users_64', u8(1) + b','.join(b'u%d' % i for i in range(64)))
    write(t, 'users_65', u8(1) + b','.join(b'u%d' % i for i in range(65)))
    write(t, 'name_63', u8(1) + b'n' * 63)
    write(t, 'name_64', u8(1) + b'n' * 64)
    write(t, 'empty_name', u8(1) + b'alice,,bob')
    write(t, 'trailing_comma', u8(1) + b'alice,')
    write(t, 'space', u8(1) + b'ann lee')
    write(t, 'utf8', u8(1) + 'zo\u00eb'.encode())
    write(t, 'nul', u8(1) + b'al\x00ice')
    write(t, 'slash', u8(2) + b'a/b')
    write(t, 'long', u8(1) + (b'abcdefg,' * 64)[:512])


# ---- fuzz_fs_args: the arguments, NUL-separated (argv[0] is added).
def fs_args():
    t = 'fuzz_fs_args'

    def argv(*a):
        return b'\x00'.join(x.encode() for x in a)

    write(t, 'mount', argv('--device', '/tmp', '--pin-file', '/nonexistent', '/', '/tmp'))
    write(t, 'mount_eq', argv('--device=/tmp', '--key=5', '--connections=8', '/', '/tmp', '-f'))
    write(t, 'mount_o', argv('-o', 'device=/tmp,key=3,pin_fd=0,ro,writeback,timeout=2.5',
                             '/', '/tmp'))
    write(t, 'init_key', argv('--init', '--key', '7', '--device', 'usb:1234', '/'))
    write(t, 'init_rcpt', argv('--init', '--updates', '/tmp', '--recipients', 'a,b',
                               '--device', '/tmp', '/'))
    write(t, 'init_group', argv('--init', '--updates=/tmp', '--group', 'g', '--device', '/', '/'))
    write(t, 'rekey', argv('--rekey', '--updates', '/tmp', '--device', '/tmp', '/', 'sub/dir'))
    write(t, 'help', argv('--help'))
    write(t, 'version', argv('-V'))
    write(t, 'debug', argv('-d', '-s', '--device', 'dir:/tmp', '--sync-interval', '0',
                           '-o', 'admin,connections=64,updates=/tmp,sync_interval=9', '/', '/tmp'))
    write(t, 'bad_conn', argv('--connections', '65', '--device', '/tmp', '/', '/tmp'))
    write(t, 'missing_value', argv('/', '/tmp', '--device'))
    write(t, 'three_paths', argv('--device', '/tmp', '/', '/tmp', '/var'))


if __name__ == '__main__':
    device_frame()
    sefile_header()
    wire_frame()
    cube_reply()
    sefile_backing()
    fs_dirhdr()
    fs_rcpt()
    fs_args()
    for d in sorted(os.listdir(ROOT)):
        p = os.path.join(ROOT, d)
        if os.path.isdir(p):
            print('%-24s %d seeds' % (d, len(os.listdir(p))))
