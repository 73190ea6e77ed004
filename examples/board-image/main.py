# main.py -- greenhouse monitor: reads sensors, logs, publishes over Wi-Fi.
import json
import time

from lib.net.wifi import connect
from lib.sensors.bme280 import BME280
from lib.sensors.soil import SoilProbe

CONFIG_PATH = "config.json"


def load_config():
    with open(CONFIG_PATH) as f:
        return json.load(f)


def log_line(path, fields):
    with open(path, "a") as f:
        f.write(",".join(str(v) for v in fields) + "\n")


def main():
    cfg = load_config()
    wlan = connect(cfg["wifi"]["ssid"], cfg["wifi"]["password"])
    air = BME280(i2c_id=cfg["i2c"]["id"], addr=cfg["i2c"]["bme280"])
    soil = SoilProbe(pin=cfg["soil"]["adc_pin"], dry=cfg["soil"]["dry"], wet=cfg["soil"]["wet"])
    interval = cfg["interval_s"]
    while True:
        t, p, h = air.read()
        moisture = soil.percent()
        log_line("data/log.csv", (time.time(), t, p, h, moisture))
        if moisture < cfg["soil"]["water_below"]:
            print("soil dry: %d%%" % moisture)
        if wlan.isconnected():
            print("ok", t, h, moisture)
        time.sleep(interval)


if __name__ == "__main__":
    main()
