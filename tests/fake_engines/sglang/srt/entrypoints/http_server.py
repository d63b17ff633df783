"""Stand-in for sglang's http_server module: the one object our launcher touches, its module-level app."""


class _App:
    def __init__(self):
        self.middlewares = []

    def add_middleware(self, cls, **options):
        self.middlewares.append((f"{cls.__module__}.{cls.__qualname__}", options))


app = _App()
