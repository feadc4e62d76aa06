"""Built-in competitions, made offline from data shipped inside PyPI packages.

See docs/builtin-competitions.md. `catalog.BUILTINS` lists them; `Builtin.build` writes
them in mleb's own format and `catalog.import_builtins` imports them into a registry.
"""
