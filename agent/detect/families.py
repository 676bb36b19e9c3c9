"""The names of the web-attack families, apart from the detector that finds them, and how
sure a finding of each family is that the request is an attack.

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

#: A finding's confidence (agent.detect.events.CONFIDENCES) by family. Payloads no benign
#: client sends are ``certain``; heuristics that ordinary text can trip are ``likely``. A
#: SQL injection or XSS finding is raised to ``certain`` by its detector when its evidence
#: is conclusive (agent.detect.injection.sql and .xss say when); a family missing here is
#: ``likely``.
CONFIDENCE = {
    "sqli": "likely",
    "xss": "likely",
    "traversal": "likely",
    "lfi_rfi": "likely",
    "cmdi": "likely",
    "shellshock": "certain",
    "jndi": "certain",
    "php_cgi": "certain",
    "scanner": "certain",
    "sensitive_file": "likely",
}


def confidence_of(family: str, conclusive: bool = False) -> str:
    """The confidence of a finding of ``family`` (``certain`` when its evidence is
    conclusive)."""
    return "certain" if conclusive else CONFIDENCE.get(family, "likely")
