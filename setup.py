"""The package list, which pyproject.toml cannot express: the shipped plugins keep their
top-level folders (methods/, granularity/: the design card's layout) but install as
`perjax.methods` and `perjax.granularities`, so nothing is installed as a top-level package
named `methods` or `granularity`. experiments/ holds config files loaded by path; it is not
installed. The same mapping binds the folders in a source checkout (perjax/shipped.py).
"""
from setuptools import find_packages, setup

PLUGIN_FOLDERS = {"perjax.methods": "methods", "perjax.granularities": "granularity"}

setup(packages=find_packages(include=["perjax", "perjax.*"]) + list(PLUGIN_FOLDERS),
      package_dir=PLUGIN_FOLDERS)
