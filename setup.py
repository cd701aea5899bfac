"""The optional C accelerator of the record scan; everything else is in pyproject.toml.

`optional=True`: without a working C compiler (or Python's headers) the build
warns and goes on, and kafkapy.protocol.record_scan uses its pure-Python
`scan_records_py`. `pip install -e .` builds the module in place.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("kafkapy.protocol._scan", ["kafkapy/protocol/_scan.c"], optional=True)])
