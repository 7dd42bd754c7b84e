"""SpineMets application layer: the ``spinemets`` command, the demo and study pipelines.

It may import every other SpineMets package (Core, the module Libs, the phantom);
nothing but tests imports it (``Testing/Python/test_layers.py``).

* :mod:`SpineMetsApp.cli` - the one ``spinemets`` command (commands imported on dispatch)
* :mod:`SpineMetsApp.commands` - one file per concern (phantom, segmentation, features, ...)
* :mod:`SpineMetsApp.demo` - the end-to-end demo on a synthetic phantom
"""
