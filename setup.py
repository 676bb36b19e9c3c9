"""Only the C extension lives here; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

LIBINJECTION = "agent/detect/injection/libinjection"

setup(
    ext_modules=[
        Extension(
            "agent.detect.injection._libinjection",
            sources=[
                "agent/detect/injection/_libinjection.c",
                f"{LIBINJECTION}/libinjection_sqli.c",
                f"{LIBINJECTION}/libinjection_xss.c",
                f"{LIBINJECTION}/libinjection_html5.c",
            ],
            depends=[
                f"{LIBINJECTION}/libinjection.h",
                f"{LIBINJECTION}/libinjection_sqli.h",
                f"{LIBINJECTION}/libinjection_sqli_data.h",
                f"{LIBINJECTION}/libinjection_xss.h",
                f"{LIBINJECTION}/libinjection_html5.h",
            ],
            include_dirs=[LIBINJECTION],
        )
    ]
)
