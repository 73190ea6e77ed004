# belay's resident agent: uploaded once per session through the raw REPL,
# then serves the whole session over binary frames. docs/boards.md has the
# protocol byte by byte. Kept compatible with small ports: no f-strings, no
# recursion, no allocation per data frame, bytes paths everywhere.
#
# Minified before upload: comment lines and blank lines are dropped and
# indentation is reduced, so comments go on their own lines only.
# Everything lives inside functions, so the board's globals are left as
# they were found.


def _belay_agent():
    import sys, os, gc
    gc.collect()
    try:
        import struct
    except ImportError:
        import ustruct as struct
    # What the board lacks, for the hello frame: the agent does without
    # each of these (docs/boards.md says what each absence costs).
    ms = []
    try:
        import binascii
    except ImportError:
        try:
            import ubinascii as binascii
        except ImportError:
            binascii = None
            ms.append("binascii")
    pk = struct.pack
    # S holds what the host may change (the hash constructor) and the open file.
    S = {"H": None, "f": None, "p": None, "e": 0}
    try:
        import hashlib
        S["H"] = hashlib.sha256
    except Exception:
        ms.append("hashlib")
    zc = 0
    zd = 0
    try:
        import io, deflate
        zd = 1
        o = io.BytesIO()
        d = deflate.DeflateIO(o, deflate.RAW, 9)
        d.write(b"aaaa")
        d.close()
        zc = 1
    except Exception:
        if not zd:
            ms.append("deflate")
    bm = hasattr(sys.stdin, "buffer") and hasattr(sys.stdout, "buffer")
    if not bm:
        ms.append("buffer")
        if not binascii:
            raise RuntimeError("belay needs sys.stdout.buffer or binascii")
    ild = getattr(os, "ilistdir", None)
    if not ild:
        ms.append("ilistdir")
    gc.collect()
    fr = gc.mem_free()
    bs = 8192 if fr > 150000 else (4096 if fr > 64000 else (1024 if fr > 20000 else 512))
    rb = bytearray(bs)
    rm = memoryview(rb)
    ib = bytearray(bs)
    im = memoryview(ib)
    if bm:
        ri = sys.stdin.buffer.readinto
        wo = sys.stdout.buffer.write

        def rx(n):
            g = 0
            while g < n:
                k = ri(im[g:n])
                if k:
                    g += k
            return im[:n]

        def tx(t, d=b""):
            wo(pk("<BBI", 0xA5, t, len(d)))
            if d:
                wo(d)

    else:

        def rx(n):
            s = ""
            while len(s) < n:
                s += sys.stdin.read(n - len(s))
            return s

        def tx(t, d=b""):
            sys.stdout.write(binascii.b2a_base64(pk("<BBI", 0xA5, t, len(d)) + bytes(d)).decode())

    def unesc(m):
        d = bytes(m)
        if b"\x1b" in d:
            for a, b in ((b"\x1bA", b"\x01"), (b"\x1bB", b"\x02"), (b"\x1bC", b"\x03"), (b"\x1bD", b"\x04"), (b"\x1bE", b"\x05"), (b"\x1b[", b"\x1b")):
                d = d.replace(a, b)
        return d

    def fhash(p, g=0):
        h = S["H"]()
        n = 0
        with open(p, "rb") as f:
            while True:
                k = f.readinto(rb)
                if not k:
                    break
                h.update(rm[:k])
                n += k
                # G: progress every 64 KB, when asked (a hash request).
                if g and n & 0xFFFF < k:
                    tx(71, pk("<I", n))
        return h.digest() + pk("<I", n)

    def info():
        im_ = sys.implementation
        m = [x for x in ms]
        try:
            u = os.uname()
            u = [u[0], u[2], u[3], u[4]]
        except Exception:
            # Firmware facts from sys instead (the host falls back on
            # sys.version for the firmware).
            m.append("uname")
            u = ["", "", "", getattr(im_, "_machine", "")]
        uid = ""
        try:
            import machine
        except Exception:
            m.append("machine")
        else:
            try:
                uid = "".join(["%02x" % b for b in machine.unique_id()])
            except Exception:
                m.append("unique_id")
        try:
            import time
            ep = str(time.gmtime(0)[0])
        except Exception:
            m.append("time")
            ep = ""
        try:
            v = os.statvfs("/")
            fs = "%d,%d,%d" % (v[1], v[2], v[4])
        except Exception:
            m.append("statvfs")
            fs = ""
        gc.collect()
        r = [
            "agent=1",
            "impl=" + im_.name,
            "ver=" + ".".join([str(x) for x in im_.version[:3]]),
            "mpy=" + str(getattr(im_, "_mpy", "")),
            "platform=" + sys.platform,
            "sysver=" + str(getattr(sys, "version", "")),
            "sysname=" + u[0],
            "release=" + u[1],
            "version=" + u[2],
            "machine=" + u[3],
            "uid=" + uid,
            "epoch=" + ep,
            "miss=" + ",".join(m),
            "free=" + str(gc.mem_free()),
            "bs=" + str(bs),
            "hash=" + ("1" if S["H"] else "0"),
            "zc=" + str(zc),
            "zd=" + str(zd),
            "buf=" + ("1" if bm else "0"),
            "fs=" + fs,
        ]
        return "\n".join(r).encode()

    def mounts():
        m = []
        try:
            import vfs
            for x in vfs.mount():
                if x[1] != "/":
                    m.append(x[1].encode())
        except Exception:
            pass
        return m

    def walk(top):
        skip = mounts()
        try:
            rootv = os.statvfs("/")
        except Exception:
            rootv = None
        out = bytearray()
        st = [top]
        # The files' paths, so later requests can name a file by its index
        # (2 bytes instead of its path); kept only where RAM allows.
        gc.collect()
        fl = [] if gc.mem_free() > 60000 else None
        S["l"] = None
        while st:
            d = st.pop()
            try:
                w = b"." if d == b"/" else d
                it = list(ild(w)) if ild else os.listdir(w)
            except OSError as e:
                tx(87, ("cannot list %s: %s" % (d, e)).encode())
                continue
            for e in it:
                # (name, type, inode[, size]) or, from os.listdir, a name;
                # type and size come from os.stat either way.
                nm = e if ild is None else e[0]
                if not isinstance(nm, bytes):
                    nm = nm.encode()
                if nm == b"." or nm == b"..":
                    continue
                p = d + nm if d == b"/" else d + b"/" + nm
                try:
                    s = os.stat(p)
                except OSError:
                    continue
                t = s[0] & 0xF000
                if t == 0x4000:
                    k = 2
                    o = p in skip
                    if not o and d == b"/" and rootv is not None:
                        try:
                            o = os.statvfs(p) != rootv
                        except Exception:
                            pass
                    if o:
                        tx(87, b"skipping " + p + b": another filesystem is mounted there")
                        continue
                    st.append(p)
                elif t == 0x8000:
                    k = 1
                    if fl is not None:
                        fl.append(p)
                else:
                    k = 3
                out += pk("<BIIH", k, s[6] if k == 1 else 0, s[8] if s[8] > 0 else 0, len(p))
                out += p
                if len(out) >= bs:
                    tx(69, out)
                    out = bytearray()
        if out:
            tx(69, out)
        S["l"] = fl
        tx(75, b"i" if fl is not None else b"")

    def fread(fl, p):
        h = S["H"]() if S["H"] and not fl & 2 else None
        z = fl & 1 and zc
        n = 0
        s0 = os.stat(p)
        with open(p, "rb") as f:
            while True:
                k = f.readinto(rb)
                if not k:
                    break
                c = rm[:k]
                if h:
                    h.update(c)
                n += k
                if z:
                    o = io.BytesIO()
                    w = deflate.DeflateIO(o, deflate.RAW, 9)
                    w.write(c)
                    w.close()
                    c2 = o.getvalue()
                    o = w = None
                    if len(c2) < k - 16:
                        tx(90, c2)
                        continue
                    if len(c2) * 10 > k * 9:
                        z = 0
                tx(68, c)
        s1 = os.stat(p)
        d = h.digest() if h else b""
        # Size and mtime (whole seconds on most ports) miss a same-size
        # rewrite within a second: hash the file again (in C, far faster
        # than the line) and compare with what was sent.
        if s1[6] != s0[6] or s1[8] != s0[8] or n != s0[6] or (h and fhash(p)[:32] != d):
            tx(88, pk("<i", -4) + b"changed while it was read")
            return
        tx(84, d + pk("<I", n))

    def wclose(rm_):
        f = S["f"]
        S["f"] = None
        if f:
            try:
                f.close()
            except Exception:
                pass
        if rm_ and S["p"]:
            try:
                os.remove(S["p"])
            except Exception:
                pass

    def err(e):
        if isinstance(e, OSError) and e.args and isinstance(e.args[0], int):
            c = e.args[0]
        else:
            c = -1
        try:
            m = "%s: %s" % (type(e).__name__, e)
        except Exception:
            m = "error"
        tx(88, pk("<i", c) + m.encode())

    tx(72, info())
    while True:
        h = bytes(rx(9)) if bm else rx(9).encode()
        c = h[0]
        n = int(h[1:9], 16)
        if n > bs:
            tx(88, pk("<i", -2) + b"frame too long")
            break
        d = unesc(rx(n)) if bm else binascii.a2b_base64(rx(n))
        try:
            if c == 87 or c == 89:
                # W: data for the file being written (Y: raw-deflated, each
                # frame on its own, window 4 KB); one credit back per frame.
                if S["e"]:
                    tx(88, pk("<i", -3) + b"write aborted")
                    continue
                try:
                    if c == 89:
                        d = deflate.DeflateIO(io.BytesIO(d), deflate.RAW, 12).read()
                    S["f"].write(d)
                except Exception as e:
                    S["e"] = 1
                    wclose(1)
                    raise e
                tx(75)
            elif c == 83:
                # S: sha256 of each NUL-separated path, or of files by index.
                if d[0] == 35:
                    ps = [S["l"][d[i] | d[i + 1] << 8] for i in range(1, len(d), 2)]
                else:
                    ps = d.split(b"\x00")
                for p in ps:
                    try:
                        tx(83, fhash(p, 1))
                    except Exception as e:
                        err(e)
            elif c == 82:
                fread(d[0], S["l"][d[1] | d[2] << 8] if d[0] & 4 else d[1:])
            elif c == 76:
                walk(d)
            elif c == 79:
                wclose(0)
                S["e"] = 0
                S["p"] = d
                S["f"] = open(d, "wb")
                tx(75)
            elif c == 67:
                wclose(0)
                if S["H"]:
                    tx(84, fhash(S["p"]))
                else:
                    tx(84, pk("<I", os.stat(S["p"])[6]))
            elif c == 65:
                wclose(1)
                tx(75)
            elif c == 77:
                try:
                    os.mkdir(d)
                except OSError as e:
                    if e.args[0] != 17 or os.stat(d)[0] & 0xF000 != 0x4000:
                        raise e
                tx(75)
            elif c == 78:
                a, b = d.split(b"\x00")
                try:
                    os.rename(a, b)
                except OSError as e:
                    if e.args[0] != 17:
                        raise e
                    os.remove(b)
                    os.rename(a, b)
                tx(75)
            elif c == 68:
                if d[0] == 100:
                    os.rmdir(d[1:])
                else:
                    os.remove(d[1:])
                tx(75)
            elif c == 73:
                tx(72, info())
            elif c == 88:
                exec(d.decode(), S)
                tx(75)
            elif c == 80:
                tx(75, d)
            elif c == 81:
                wclose(0)
                tx(75)
                break
            else:
                tx(88, pk("<i", -2) + b"unknown command")
        except Exception as e:
            err(e)
        gc.collect()


def _belay_main():
    import os, gc
    c = os.getcwd()
    try:
        os.chdir("/")
        _belay_agent()
    finally:
        os.chdir(c)
        gc.collect()


try:
    _belay_main()
finally:
    del _belay_agent, _belay_main
