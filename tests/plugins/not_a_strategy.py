"""A class that is not a Flower strategy, to test the error it must give."""


class Averager:
    pass
