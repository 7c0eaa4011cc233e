"""Packaging that pyproject.toml cannot express: the top-level `sql/` folder ships inside the
wheel as the package data `pipelines/sql/` (everything else is declared in pyproject.toml)."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["pipelines", "pipelines.*"], exclude=["*.__pycache__"]),
        "pipelines.sql",
    ],
    package_dir={"pipelines.sql": "sql"},
    package_data={"pipelines.templates": ["*.j2"], "pipelines.sql": ["*.sql"]},
)
