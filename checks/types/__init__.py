"""The explicit registry of check types: a plain dict, no self-registration on import."""

from __future__ import annotations

from checks.types.accounts import (
    AccountsCheck,
    HistoryFilesCheck,
    HomeDirsCheck,
    LoginDefsCheck,
    PwqualityCheck,
    SingleUserLoginCheck,
)
from checks.types.apache import (
    ApacheDirective,
    ApacheForbidden,
    ApacheHttpsRedirect,
    ApacheModules,
    ApacheTlsProtocols,
)
from checks.types.apache_hardening import (
    ApacheAccessLog,
    ApacheFileModes,
    ApacheMethods,
    ApacheOptions,
    ApacheStatusPages,
)
from checks.types.apache_tls import ApacheHsts, ApacheOcspStapling, ApacheTlsCiphers
from checks.types.apt import AptConfCheck
from checks.types.backups import BackupCheck
from checks.types.base import CheckType
from checks.types.dpkg import DpkgStateCheck
from checks.types.files import FileCheck, FileContentCheck
from checks.types.firewall import FirewallDefaultDenyCheck
from checks.types.kernel import CoreDumpsCheck
from checks.types.logs import (
    AuditdLogCheck,
    JournaldStorageCheck,
    LogRetentionCheck,
    LogShippingCheck,
)
from checks.types.outside import HttpRedirectCheck, PortClosedCheck
from checks.types.php import PhpFpmPools, PhpIni
from checks.types.postgres import PgHbaCheck, PostgresConfCheck, PostgresTlsCheck
from checks.types.postgres_inside import PostgresInsideCheck
from checks.types.postgres_install import PostgresFilesCheck, PostgresVersionCheck
from checks.types.probes import SSHProbeCheck, TLSProbeCheck
from checks.types.ssh_crypto import SshAlgorithmsProbeCheck, SshdAlgorithmsCheck, SshdModuliCheck
from checks.types.sshd import (
    SshdAuthModeCheck,
    SshdConfigCheck,
    SshdEffectiveCheck,
    SshdNetworkRestrictionCheck,
)
from checks.types.sshd_contexts import SshdAuthContextsCheck
from checks.types.sshd_limits import SshdAllowListCheck, SshdStartupsCheck
from checks.types.sshd_listen import SshdListenCheck
from checks.types.system import (
    CommandCheck,
    DeletedFilesCheck,
    ListeningCheck,
    PackageCheck,
    ProcessCheck,
    ServiceCheck,
)
from checks.types.tls_live import (
    HSTSProbeCheck,
    OCSPStaplingProbeCheck,
    TLSCertificateProbeCheck,
    TLSCipherProbeCheck,
    TLSHandshakeProbeCheck,
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
        DeletedFilesCheck,
        PwqualityCheck,
        AccountsCheck,
        HomeDirsCheck,
        HistoryFilesCheck,
        LoginDefsCheck,
        SingleUserLoginCheck,
        CoreDumpsCheck,
        LogShippingCheck,
        JournaldStorageCheck,
        LogRetentionCheck,
        AuditdLogCheck,
        BackupCheck,
        TLSProbeCheck,
        SSHProbeCheck,
        TLSCipherProbeCheck,
        HSTSProbeCheck,
        TLSCertificateProbeCheck,
        TLSHandshakeProbeCheck,
        OCSPStaplingProbeCheck,
        ApacheModules,
        ApacheDirective,
        ApacheForbidden,
        ApacheHttpsRedirect,
        ApacheTlsProtocols,
        ApacheTlsCiphers,
        ApacheHsts,
        ApacheOcspStapling,
        ApacheOptions,
        ApacheMethods,
        ApacheAccessLog,
        ApacheStatusPages,
        ApacheFileModes,
        PhpIni,
        PhpFpmPools,
        SshdConfigCheck,
        SshdEffectiveCheck,
        SshdAuthModeCheck,
        SshdNetworkRestrictionCheck,
        SshdAlgorithmsCheck,
        SshAlgorithmsProbeCheck,
        SshdModuliCheck,
        SshdStartupsCheck,
        SshdAllowListCheck,
        SshdListenCheck,
        SshdAuthContextsCheck,
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
