"""The shipped sample export and its gold set: data, installed as `assay.sample` so that `assay demo` and the
sample suites find it through importlib.resources from a wheel as from a checkout. No code lives here."""
