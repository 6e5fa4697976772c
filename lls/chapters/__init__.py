"""One package per book chapter: config -> protocol (cached) -> analysis -> claims -> figures.

See ``lls/README.md`` for the data walk and what each module of a chapter may hold.
"""
