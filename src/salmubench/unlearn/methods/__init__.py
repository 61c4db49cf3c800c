"""Every unlearning method, one module each; importing this package registers them all.

Adding a method = adding one file here with a `@register`ed `Method` subclass; the
contract tests in tests/test_unlearn_methods.py pick it up by themselves.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
