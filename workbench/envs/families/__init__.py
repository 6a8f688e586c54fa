"""Built-in scenario families: seeded generators of many tasks per split.

* ``calculator`` (text) — arithmetic word problems solved with a calculator tool.
* ``inventory`` (api) — a stateful inventory and orders service exposed as tools.
* ``forms`` (browser) — fill in and submit local HTML forms in Chromium.

Each module's docstring says what the family tests and how to run it; ``scenarios/<family>.yaml``
names the generator and the command. Modules here register their families, tools and checkers
when imported; :mod:`workbench.envs` imports them on first lookup, never at import time.
"""
