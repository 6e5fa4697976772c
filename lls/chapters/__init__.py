"""One module per book chapter: its ``PARAMS`` (see :mod:`lls.presets`) and its experiments.

A chapter module turns a validated :class:`lls.presets.Config` into result objects (cached
through :mod:`lls.cache`) and claim metrics (:mod:`lls.metrics`); the notebook only calls it,
plots and explains.
"""
