"""The explicit registry of check types: a plain dict, no self-registration on import."""

from __future__ import annotations

from checks.types.accounts import PwqualityCheck
from checks.types.apache import (
    ApacheDirective,
    ApacheForbidden,
    ApacheHttpsRedirect,
    ApacheModules,
    ApacheTlsProtocols,
)
from checks.types.apt import AptConfCheck
from checks.types.backups import BackupCheck
from checks.types.base import CheckType
from checks.types.dpkg import DpkgStateCheck
from checks.types.files import FileCheck, FileContentCheck
from checks.types.firewall import FirewallDefaultDenyCheck
from checks.types.outside import HttpRedirectCheck, PortClosedCheck
from checks.types.php import PhpIni
from checks.types.postgres import PgHbaCheck, PostgresConfCheck, PostgresTlsCheck
from checks.types.postgres_inside import PostgresInsideCheck
from checks.types.postgres_install import PostgresFilesCheck, PostgresVersionCheck
from checks.types.probes import SSHProbeCheck, TLSProbeCheck
from checks.types.sshd import (
    SshdAuthModeCheck,
    SshdConfigCheck,
    SshdEffectiveCheck,
    SshdNetworkRestrictionCheck,
)
from checks.types.system import (
    CommandCheck,
    ListeningCheck,
    PackageCheck,
    ProcessCheck,
    ServiceCheck,
)
from checks.types.updates import (
    AptSecuritySourceCheck,
    RebootPendingCheck,
    SecurityUpdatesCheck,
)

REGISTRY: dict[str, type[CheckType]] = {
    cls.name: cls
    for cls in (
        FileCheck,
        FileContentCheck,
        PackageCheck,
        ServiceCheck,
        ProcessCheck,
        ListeningCheck,
        CommandCheck,
        PwqualityCheck,
        BackupCheck,
        TLSProbeCheck,
        SSHProbeCheck,
        ApacheModules,
        ApacheDirective,
        ApacheForbidden,
        ApacheHttpsRedirect,
        ApacheTlsProtocols,
        PhpIni,
        SshdConfigCheck,
        SshdEffectiveCheck,
        SshdAuthModeCheck,
        SshdNetworkRestrictionCheck,
        PostgresConfCheck,
        PgHbaCheck,
        PostgresTlsCheck,
        PostgresFilesCheck,
        PostgresVersionCheck,
        PostgresInsideCheck,
        AptConfCheck,
        AptSecuritySourceCheck,
        SecurityUpdatesCheck,
        RebootPendingCheck,
        DpkgStateCheck,
        FirewallDefaultDenyCheck,
        PortClosedCheck,
        HttpRedirectCheck,
    )
}
