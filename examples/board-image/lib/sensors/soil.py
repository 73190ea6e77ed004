# Capacitive soil-moisture probe on an ADC pin.
from machine import ADC, Pin


class SoilProbe:
    def __init__(self, pin, dry, wet):
        self.adc = ADC(Pin(pin))
        self.dry = dry
        self.wet = wet

    def raw(self, samples=8):
        return sum(self.adc.read_u16() for _ in range(samples)) // samples

    def percent(self):
        span = self.dry - self.wet
        value = (self.dry - self.raw()) * 100 // span
        return max(0, min(100, value))
