"""A clock for the reactions in a unit test: it starts at the real time and moves only when they (or the test) sleep."""

import time


class Clock:
    """Call it for the time; ``sleep(seconds)`` moves it on."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
