# boot.py -- runs once on every boot, before main.py.
import gc
import machine

gc.threshold(4096)
machine.freq(125_000_000)
