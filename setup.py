from setuptools import find_packages, setup

# Metadata lives in pyproject.toml; this file keeps `pip install -e .` working on older tooling.
setup(packages=find_packages(exclude=["anomaly_pipeline_tests*", "bench*"]))
