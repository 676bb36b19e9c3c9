"""The names of the web-attack families, apart from the detector that finds them.

Rule files name families; validating those names must not import the whole injection
detector (libinjection, the pattern tables), which costs more than scanning a small log.
"""

FAMILIES = (
    "sqli",
    "xss",
    "traversal",
    "lfi_rfi",
    "cmdi",
    "shellshock",
    "jndi",
    "php_cgi",
    "scanner",
    "sensitive_file",
    "crlf",
    "control_bytes",
    "sqli_probe",
    "foreign_product",
)
