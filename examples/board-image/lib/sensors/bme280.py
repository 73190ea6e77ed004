# Minimal BME280 driver (temperature, pressure, humidity) over I2C.
from machine import I2C
import struct


class BME280:
    def __init__(self, i2c_id=0, addr=0x76):
        self.i2c = I2C(i2c_id)
        self.addr = addr
        self._load_calibration()
        # humidity x1, then temperature x1 / pressure x1, normal mode
        self.i2c.writeto_mem(self.addr, 0xF2, b"\x01")
        self.i2c.writeto_mem(self.addr, 0xF4, b"\x27")

    def _load_calibration(self):
        raw = self.i2c.readfrom_mem(self.addr, 0x88, 24)
        (self.t1, self.t2, self.t3, self.p1, self.p2, self.p3, self.p4, self.p5,
         self.p6, self.p7, self.p8, self.p9) = struct.unpack("<HhhHhhhhhhhh", raw)
        self.h1 = self.i2c.readfrom_mem(self.addr, 0xA1, 1)[0]
        raw = self.i2c.readfrom_mem(self.addr, 0xE1, 7)
        self.h2, self.h3 = struct.unpack("<hB", raw[0:3])
        self.h4 = (raw[3] << 4) | (raw[4] & 0x0F)
        self.h5 = (raw[5] << 4) | (raw[4] >> 4)
        self.h6 = struct.unpack("<b", raw[6:7])[0]

    def read(self):
        d = self.i2c.readfrom_mem(self.addr, 0xF7, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        v1 = (adc_t / 16384.0 - self.t1 / 1024.0) * self.t2
        v2 = ((adc_t / 131072.0 - self.t1 / 8192.0) ** 2) * self.t3
        t_fine = v1 + v2
        temp = t_fine / 5120.0
        v1 = t_fine / 2.0 - 64000.0
        v2 = v1 * v1 * self.p6 / 32768.0 + v1 * self.p5 * 2.0
        v2 = v2 / 4.0 + self.p4 * 65536.0
        v1 = (self.p3 * v1 * v1 / 524288.0 + self.p2 * v1) / 524288.0
        v1 = (1.0 + v1 / 32768.0) * self.p1
        pressure = 0
        if v1:
            p = 1048576.0 - adc_p
            p = ((p - v2 / 4096.0) * 6250.0) / v1
            v1 = self.p9 * p * p / 2147483648.0
            v2 = p * self.p8 / 32768.0
            pressure = p + (v1 + v2 + self.p7) / 16.0
        h = t_fine - 76800.0
        h = (adc_h - (self.h4 * 64.0 + self.h5 / 16384.0 * h)) * (
            self.h2 / 65536.0 * (1.0 + self.h6 / 67108864.0 * h * (1.0 + self.h3 / 67108864.0 * h)))
        h = h * (1.0 - self.h1 * h / 524288.0)
        return temp, pressure / 100.0, max(0.0, min(100.0, h))
