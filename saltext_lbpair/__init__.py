"""
lbpair as a pip-installed Salt extension.

Salt's loader finds this package through the ``salt.loader`` entry point and
loads its sub-packages ``modules``, ``states``, ... (the repository's
``_modules``, ``_states``, ... folders) as extension module directories.
"""
