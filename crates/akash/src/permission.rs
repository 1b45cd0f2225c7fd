//! What a verified token permits on one lease: the decision a provider gateway makes for each
//! request, as the Akash reference does (`AuthorizeLeaseIDForPermissionScope`).
//!
//! A token speaks only for its issuer's leases. `full` permits everything, `scoped` the listed
//! actions, both with any provider; `granular` looks up the provider's own entry, which is
//! `full`, `scoped`, or per deployment (`dseq`; `gseq` and `oseq` of 0 mean any group and any
//! order), with the actions and the services it names.

use crate::address::Address;
use crate::claims::{Claims, Leases, ProviderAccess, Scope};

/// One lease (RFC-free: the Akash market's lease id) and the service a request touches.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The lease's owner: the tenant's address.
    pub owner: &'a Address,
    /// Deployment sequence.
    pub dseq: u64,
    /// Group sequence.
    pub gseq: u32,
    /// Order sequence.
    pub oseq: u32,
    /// The service of the lease the request touches.
    pub service: &'a str,
}

/// Whether `claims` permit `scope` on `lease` with the provider `provider` (the gateway's own
/// address).
pub fn permits(claims: &Claims, provider: &Address, scope: Scope, lease: &Lease<'_>) -> bool {
    if &claims.issuer != lease.owner {
        return false;
    }
    match &claims.leases {
        Leases::Full => true,
        Leases::Scoped(scopes) => scopes.contains(scope),
        Leases::Granular(permissions) => permissions
            .iter()
            .find(|permission| &permission.provider == provider)
            .is_some_and(|permission| match &permission.access {
                ProviderAccess::Full => true,
                ProviderAccess::Scoped(scopes) => scopes.contains(scope),
                ProviderAccess::Granular(deployments) => deployments.iter().any(|d| {
                    d.dseq == lease.dseq
                        && (d.gseq == 0 || d.gseq == lease.gseq)
                        && (d.oseq == 0 || d.oseq == lease.oseq)
                        && d.scope.contains(scope)
                        && d.services.iter().any(|s| s == lease.service)
                }),
            }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const OWNER: &str = "akash1zyfpx9q4zct3sxg6rvwp68slyqsjygey0quqf3";
    const PROVIDER: &str = "akash1yg3jgffxyu5zj23t9skjutesxyerxdp46ed34h";
    const OTHER: &str = "akash1xv6r2d3h8qun5weu85lr7szpgfp5g32xdyet26";

    fn claims(leases: &Value) -> Claims {
        let payload = json!({
            "iss": OWNER, "iat": 1, "nbf": 1, "exp": 2, "version": "v1", "leases": leases
        });
        let Value::Object(map) = payload else {
            panic!("an object")
        };
        Claims::parse(&map).expect("valid claims")
    }

    fn address(text: &str) -> Address {
        Address::parse(text).expect("address")
    }

    #[test]
    fn table() {
        let owner = address(OWNER);
        let other_owner = address(OTHER);
        let provider = address(PROVIDER);
        let other_provider = address(OTHER);
        let lease = |owner, dseq, gseq, oseq, service| Lease {
            owner,
            dseq,
            gseq,
            oseq,
            service,
        };
        let full = claims(&json!({"access": "full"}));
        let scoped = claims(&json!({"access": "scoped", "scope": ["logs", "status"]}));
        let per_provider = claims(&json!({"access": "granular", "permissions": [
            {"provider": PROVIDER, "access": "full"},
            {"provider": OTHER, "access": "scoped", "scope": ["shell"]},
        ]}));
        let granular = claims(&json!({"access": "granular", "permissions": [
            {"provider": PROVIDER, "access": "granular", "deployments": [
                {"dseq": 10, "scope": ["logs"], "services": ["web", "db"]},
                {"dseq": 20, "gseq": 2, "scope": ["shell"], "services": ["web"]},
                {"dseq": 30, "gseq": 1, "oseq": 3, "scope": ["send-manifest", "status"], "services": ["api"]},
                {"dseq": 40, "gseq": 0, "oseq": 0, "scope": ["restart"], "services": ["worker"]},
            ]},
        ]}));
        // (claims, provider, scope, lease, expected)
        let cases: Vec<(&str, &Claims, &Address, Scope, Lease<'_>, bool)> = vec![
            (
                "full: anything",
                &full,
                &provider,
                Scope::Shell,
                lease(&owner, 1, 1, 1, "x"),
                true,
            ),
            (
                "full: any provider",
                &full,
                &other_provider,
                Scope::SendManifest,
                lease(&owner, 9, 9, 9, "y"),
                true,
            ),
            (
                "full: not another owner's lease",
                &full,
                &provider,
                Scope::Logs,
                lease(&other_owner, 1, 1, 1, "x"),
                false,
            ),
            (
                "scoped: listed",
                &scoped,
                &provider,
                Scope::Logs,
                lease(&owner, 1, 1, 1, "x"),
                true,
            ),
            (
                "scoped: any provider",
                &scoped,
                &other_provider,
                Scope::Status,
                lease(&owner, 1, 1, 1, "x"),
                true,
            ),
            (
                "scoped: not listed",
                &scoped,
                &provider,
                Scope::Shell,
                lease(&owner, 1, 1, 1, "x"),
                false,
            ),
            (
                "scoped: not another owner's lease",
                &scoped,
                &provider,
                Scope::Logs,
                lease(&other_owner, 1, 1, 1, "x"),
                false,
            ),
            (
                "granular full: its provider",
                &per_provider,
                &provider,
                Scope::Restart,
                lease(&owner, 5, 1, 1, "x"),
                true,
            ),
            (
                "granular scoped: listed",
                &per_provider,
                &other_provider,
                Scope::Shell,
                lease(&owner, 5, 1, 1, "x"),
                true,
            ),
            (
                "granular scoped: not listed",
                &per_provider,
                &other_provider,
                Scope::Logs,
                lease(&owner, 5, 1, 1, "x"),
                false,
            ),
            (
                "granular: provider not named",
                &granular,
                &other_provider,
                Scope::Logs,
                lease(&owner, 10, 1, 1, "web"),
                false,
            ),
            (
                "granular: dseq, any gseq/oseq",
                &granular,
                &provider,
                Scope::Logs,
                lease(&owner, 10, 7, 9, "db"),
                true,
            ),
            (
                "granular: wrong dseq",
                &granular,
                &provider,
                Scope::Logs,
                lease(&owner, 11, 1, 1, "web"),
                false,
            ),
            (
                "granular: service not listed",
                &granular,
                &provider,
                Scope::Logs,
                lease(&owner, 10, 1, 1, "cache"),
                false,
            ),
            (
                "granular: scope not listed",
                &granular,
                &provider,
                Scope::Shell,
                lease(&owner, 10, 1, 1, "web"),
                false,
            ),
            (
                "granular: gseq matches, any oseq",
                &granular,
                &provider,
                Scope::Shell,
                lease(&owner, 20, 2, 5, "web"),
                true,
            ),
            (
                "granular: gseq differs",
                &granular,
                &provider,
                Scope::Shell,
                lease(&owner, 20, 3, 1, "web"),
                false,
            ),
            (
                "granular: gseq and oseq match",
                &granular,
                &provider,
                Scope::SendManifest,
                lease(&owner, 30, 1, 3, "api"),
                true,
            ),
            (
                "granular: oseq differs",
                &granular,
                &provider,
                Scope::Status,
                lease(&owner, 30, 1, 4, "api"),
                false,
            ),
            (
                "granular: explicit 0 is any",
                &granular,
                &provider,
                Scope::Restart,
                lease(&owner, 40, 8, 8, "worker"),
                true,
            ),
            (
                "granular: not another owner's lease",
                &granular,
                &provider,
                Scope::Logs,
                lease(&other_owner, 10, 1, 1, "web"),
                false,
            ),
        ];
        for (name, claims, provider, scope, lease, expected) in cases {
            assert_eq!(permits(claims, provider, scope, &lease), expected, "{name}");
        }
    }
}
