"""Zeroes the code of every cubin in a CUDA shared library that is not for the given SM architecture (default 90,
H100/H200), so that the library compresses to what that GPU loads: onnxruntime 1.30's
libonnxruntime_providers_cuda.so holds cubins for sm_75, 80, 86, 89, 90 and 120 (no PTX), and the CUDA driver only
ever picks the cubins of the device's own architecture. The file keeps its size and every header (ELF sections,
fatbin container and entry headers), so it loads as before; only other GPUs would find garbage code.

Layout: the ELF section .nv_fatbin holds fatbin containers (magic 0xBA55ED50: u32 magic, u16 version, u16 header
size, u64 payload size), each a run of entries (u16 kind, u16 flags, u32 header size, u64 payload size, ..., u32 SM
architecture at byte 28 of the entry header) followed by their payloads.

usage: python3 keep-sm90.py IN OUT [SM]     prints what it zeroed to stderr
"""
import struct
import sys

CONTAINER_MAGIC = 0xBA55ED50


def section(data, name):
    """(offset, size) of the ELF64 section `name`."""
    if data[:4] != b'\x7fELF' or data[4] != 2:
        raise SystemExit('not an ELF64 file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)
    headers = [struct.unpack_from('<IIQQQQ', data, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]
    for sh_name, _, _, _, offset, size in headers:
        end = data.index(b'\0', names_at + sh_name)
        if data[names_at + sh_name:end].decode() == name:
            return offset, size
    raise SystemExit(f'no {name} section (not a CUDA library?)')


def keep(data, sm):
    """Zeroes the payload of every fatbin entry whose architecture is not `sm`: (bytes zeroed, bytes kept)."""
    offset, size = section(data, '.nv_fatbin')
    p, end, zeroed, kept = offset, offset + size, 0, 0
    while p + 16 <= end:
        magic, _, header, payload = struct.unpack_from('<IHHQ', data, p)
        if magic != CONTAINER_MAGIC:
            p += 8  # containers are 8-byte aligned; padding between them
            continue
        q, stop = p + header, p + header + payload
        while q < stop:
            _, _, entry_header, entry_payload = struct.unpack_from('<HHIQ', data, q)
            arch, = struct.unpack_from('<I', data, q + 28)
            body = q + entry_header
            if arch == sm:
                kept += entry_payload
            else:
                data[body:body + entry_payload] = bytes(entry_payload)
                zeroed += entry_payload
            q = body + entry_payload
        p = stop
    return zeroed, kept


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__.strip().splitlines()[-1])
    src, dst = sys.argv[1:3]
    sm = int(sys.argv[3]) if len(sys.argv) == 4 else 90
    data = bytearray(open(src, 'rb').read())
    zeroed, kept = keep(data, sm)
    if kept == 0:
        raise SystemExit(f'{src}: no sm_{sm} code in it; refusing to zero everything')
    open(dst, 'wb').write(data)
    print(f'{src}: zeroed {zeroed / 1e6:.1f} MB of non-sm_{sm} cubins, kept {kept / 1e6:.1f} MB of sm_{sm}', file=sys.stderr)


if __name__ == '__main__':
    main()
