//! The last stage: raw values into the typed [`Config`], section by section, every problem
//! collected into one [`Report`] so that one run lists them all.

use super::{
    Config, Loaded, acme, auth, certificates, challenges, error::ConfigError, limits, log,
    notifications, raw::RawConfig, report::Report, server, storage, tree::Origins,
};

/// Builds the typed config, or every problem found.
pub(super) fn resolve(raw: RawConfig, origins: &Origins) -> Result<Loaded, ConfigError> {
    let mut report = Report::new(origins);
    let server = server::server(raw.server.unwrap_or_default(), &mut report);
    let storage = storage::storage(raw.storage.unwrap_or_default(), &mut report);
    let acme = acme::acme(raw.acme.unwrap_or_default(), &mut report);
    let challenges = challenges::challenges(raw.challenges.unwrap_or_default(), &mut report);
    let auth = auth::auth(raw.auth.unwrap_or_default(), &mut report);
    let log = log::log(raw.log.unwrap_or_default(), &mut report);
    let notifications =
        notifications::notifications(raw.notifications.unwrap_or_default(), &mut report);
    let certificates =
        certificates::certificates(&raw.certificates.unwrap_or_default(), &mut report);
    let directory_url = acme.as_ref().map_or("", |acme| acme.directory_url.as_str());
    let limits = limits::limits(raw.limits.unwrap_or_default(), directory_url, &mut report);
    let (problems, warnings) = report.finish();
    match (
        server,
        storage,
        acme,
        challenges,
        auth,
        log,
        notifications,
        certificates,
        limits,
    ) {
        (
            Ok(server),
            Ok(storage),
            Ok(acme),
            Ok(challenges),
            Ok(auth),
            Ok(log),
            Ok(notifications),
            Ok(certificates),
            Ok(limits),
        ) if problems.is_empty() => Ok(Loaded {
            config: Config {
                server,
                storage,
                acme,
                challenges,
                auth,
                log,
                notifications,
                certificates,
                limits,
            },
            warnings,
        }),
        _ => Err(ConfigError::Invalid(problems)),
    }
}
