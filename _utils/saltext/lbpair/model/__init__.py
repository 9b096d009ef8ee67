"""
The ``lbpair`` pillar as a model: its schema and what each key may hold (services, TLS, the
sandbox's tokenizers and allow-lists), checked on whichever side compiles it.
"""
