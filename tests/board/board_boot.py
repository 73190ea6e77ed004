# Run once by worker.mjs when the board starts, in __main__, before the REPL,
# compiled under the name _boot.py (so a traceback through these wrappers
# reads like one through a port's frozen _boot.py).
# It plays the part of a port's frozen _boot.py: it mounts the board's flash
# at / and gives the WebAssembly build the modules and attributes a board
# has. `_cfg` is set by worker.mjs just before this runs; everything here is
# removed from __main__ again at the end.


def _board_boot(cfg):
    import sys
    import os
    import builtins
    import micropython
    import _boardjs
    from collections import namedtuple

    # Modules: the pyscript build freezes micropython-lib packages that
    # shadow the C modules a board has (binascii.py is a slow pure-Python
    # binascii whose a2b_base64 rejects str, for one): use the C ones, which
    # stay reachable under their u-names. The frozen extras no stock board
    # has (base64, logging, ...) are hidden below, unless asked for.
    for name in ("binascii", "io", "time", "collections"):
        sys.modules[name] = __import__("u" + name)

    # What this board's firmware lacks (--without): the functions go here,
    # the modules through `blocked` below, so that code on the board meets
    # an AttributeError or ImportError as on such a port.
    without = set(cfg["without"])

    def _remove(obj, name):
        try:
            delattr(obj, name)
        except Exception:  # AttributeError, or KeyError from a module
            pass

    # The flash is the whole filesystem (worker.mjs removed Emscripten's
    # /dev, /tmp, /home and /proc), mounted at / as on a board.
    os.chdir("/")

    # os.uname(), as on a board: (sysname, nodename, release, version, machine).
    uname_result = namedtuple("uname_result", ("sysname", "nodename", "release", "version", "machine"))
    impl = sys.implementation
    release = "%d.%d.%d" % impl.version[:3]
    if impl.version[3]:
        release += "-" + impl.version[3]
    uname = uname_result(cfg["sysname"], cfg["sysname"], release, cfg["version"], impl._machine)

    def _uname():
        return uname

    if "uname" in without:
        _remove(os, "uname")
    else:
        os.uname = _uname

    # os.ilistdir() yields (name, type, inode, size) as LittleFS and FAT do
    # (VfsPosix yields 3-tuples without the size).
    real_ilistdir = os.ilistdir

    def _ilistdir(*args):
        where = args[0] if args else "."
        for entry in real_ilistdir(*args):
            name, kind, inode = entry[0], entry[1], entry[2]
            if "ilistdir-size" in without:
                yield (name, kind, inode)
                continue
            size = 0
            if kind == 0x8000:
                sep = b"/" if isinstance(name, bytes) else "/"
                try:
                    size = os.stat(where + sep + name)[6]
                except OSError:
                    pass
            yield (name, kind, inode, size)

    if "ilistdir" in without:
        # A port whose VFS only has os.listdir.
        def _listdir(where="."):
            return [e[0] for e in real_ilistdir(where)]

        os.listdir = _listdir
        _remove(os, "ilistdir")
    else:
        os.ilistdir = _ilistdir

    # os.statvfs("/") answers for the board's flash (--flash-size), the way
    # LittleFS does: (bsize, frsize, blocks, bfree, bavail, 0, 0, 0, 0, namemax).
    real_statvfs = os.statvfs

    def _statvfs(path):
        real_statvfs(path)  # the path must exist
        return tuple(int(x) for x in _boardjs.statvfs().split(","))

    if "statvfs" in without:
        _remove(os, "statvfs")
    else:
        os.statvfs = _statvfs

    # The machine module: unique_id(), reset(), soft_reset() and a few
    # constants. reset() is a hard reset: the board reboots into the friendly
    # REPL; soft_reset() is Ctrl-D.
    uid = bytes.fromhex(cfg["unique_id"])

    class _Pin:
        IN = 0
        OUT = 1

        def __init__(self, *args, **kwargs):
            self._v = 0

        def value(self, *v):
            if v:
                self._v = v[0]
            return self._v

        def on(self):
            self._v = 1

        def off(self):
            self._v = 0

    class _Machine:
        PWRON_RESET = 1
        HARD_RESET = 2
        WDT_RESET = 3
        DEEPSLEEP_RESET = 4
        SOFT_RESET = 5
        Pin = _Pin

        def reset(self):
            _boardjs.hard_reset()
            raise SystemExit

        def soft_reset(self):
            raise SystemExit

        def reset_cause(self):
            return _boardjs.reset_cause()

        def freq(self, *args):
            return cfg["freq"]

        def idle(self):
            pass

        def disable_irq(self):
            return 0

        def enable_irq(self, state=0):
            pass

    if "unique_id" not in without:
        _Machine.unique_id = lambda self: uid
    if "machine" not in without:
        sys.modules["machine"] = _Machine()

    # Modules a port may lack (--without hashlib, deflate, time, binascii,
    # machine), plus the WebAssembly-only ones, which no board has.
    blocked = set(cfg["blocked"])
    real_import = builtins.__import__

    def _import(name, *args):
        if name in blocked:
            raise ImportError("no module named '%s'" % name)
        return real_import(name, *args)

    builtins.__import__ = _import
    for name in blocked:
        if name in sys.modules:
            del sys.modules[name]

    # sys.stdout / sys.stderr in text mode turn "\n" into "\r\n", as a port's
    # stdio does (mp_hal_stdout_tx_strn_cooked); the WebAssembly build passes
    # them through unchanged. `.buffer` stays raw. With --no-buffer there is
    # no `.buffer` on stdin, stdout or stderr. `sys` itself is a copy whose
    # stdio attributes are these wrappers (the real module is read-only);
    # print() goes through them too.
    import io
    import select

    class _TextOut(io.IOBase):
        def __init__(self, f, buffer):
            self._f = f
            if buffer:
                self.buffer = f.buffer

        def write(self, data):
            if isinstance(data, str):
                self._f.write(data.replace("\n", "\r\n"))
            else:
                self._f.buffer.write(bytes(data).replace(b"\n", b"\r\n"))
            return len(data)

        def flush(self):
            pass

        def ioctl(self, req, arg):
            return 0

    class _TextIn(io.IOBase):
        # A port's text stdin turns "\r" into "\n" (sys_stdio_mphal.c).
        def __init__(self, f, buffer):
            self._f = f
            if buffer:
                self.buffer = f.buffer
            self._poll = select.poll()
            self._poll.register(f, select.POLLIN)

        def read(self, *a):
            return self._f.read(*a).replace("\r", "\n")

        def readinto(self, buf, *a):
            n = self._f.readinto(buf, *a)
            for i in range(n or 0):
                if buf[i] == 13:
                    buf[i] = 10
            return n

        def readline(self, limit=-1):
            line = ""
            while limit < 0 or len(line) < limit:
                c = self.read(1)
                if not c:
                    break
                line += c
                if c == "\n":
                    break
            return line

        def ioctl(self, req, arg):
            if req == 3:  # MP_STREAM_POLL
                ready = select.POLLOUT
                if self._poll.poll(0):
                    ready |= select.POLLIN
                return ready & arg
            return 0

        def __iter__(self):
            return self

        def __next__(self):
            line = self.readline()
            if not line:
                raise StopIteration
            return line

    class _Sys:
        pass

    fake = _Sys()
    for name in dir(sys):
        try:
            setattr(fake, name, getattr(sys, name))
        except Exception:
            pass
    stdout = _TextOut(sys.stdout, cfg["buffer"])
    fake.stdout = stdout
    fake.stderr = _TextOut(sys.stderr, cfg["buffer"])
    fake.stdin = _TextIn(sys.stdin, cfg["buffer"])
    real_print_exception = sys.print_exception

    def _print_exception(exc, file=None):
        real_print_exception(exc, stdout if file is None else file)

    fake.print_exception = _print_exception
    sys.modules["sys"] = fake

    real_print = builtins.print

    def _print(*args, sep=" ", end="\n", file=None):
        if file is None:
            file = stdout
        if file is not stdout:
            return real_print(*args, sep=sep, end=end, file=file)
        text = (" " if sep is None else sep).join([str(a) for a in args]) + ("\n" if end is None else end)
        stdout.write(text)

    builtins.print = _print

    # What a soft reset keeps (worker.mjs calls _board.soft_reset()).
    keep_modules = set(sys.modules)
    keep_path = list(sys.path)

    def _soft_reset():
        g = sys.modules["__main__"].__dict__ if "__main__" in sys.modules else globals()
        for name in list(g):
            if name != "__name__":
                del g[name]
        for name in list(sys.modules):
            if name not in keep_modules:
                del sys.modules[name]
        sys.path[:] = keep_path
        micropython.kbd_intr(-1)

    def _run_file(name):
        # boot.py / main.py, as pyexec_file_if_exists() runs them: Ctrl-C
        # interrupts them, an exception prints its traceback.
        try:
            os.stat(name)
        except OSError:
            return
        micropython.kbd_intr(3)
        try:
            builtins.execfile(name)
            micropython.kbd_intr(-1)  # a Ctrl-C just after the file ends lands here
        except SystemExit:
            pass
        except BaseException as e:
            sys.print_exception(e)
        micropython.kbd_intr(-1)

    class _Board:
        soft_reset = staticmethod(_soft_reset)
        run_file = staticmethod(_run_file)

    sys.modules["_board"] = _Board()
    keep_modules.add("_board")


_board_boot(_cfg)
del _board_boot
del _cfg
