//! The scopes a connect asks for (per plan, tenant and Xero vocabulary), and the check that a
//! granted token can serve the tenant's enabled entities.

use crate::config::XeroScopeSet;
use crate::tenancy::{Entity, Plan, Tenant};
use crate::{Error, Provider, Result};

/// The scopes a tenant's plan asks for, unless the tenant configured its own. Starter plans only
/// read (sync pulls); the others may also create records. Xero needs `offline_access` for a refresh
/// token and Zoho needs settings create/delete to manage its per-organisation webhooks, so those are
/// always added.
pub fn scopes_for(tenant: &Tenant, provider: Provider) -> Vec<String> {
    scopes_for_set(tenant, provider, XeroScopeSet::Granular)
}

/// [`scopes_for`] in the scope vocabulary this deployment's Xero app accepts: an app created on or
/// after 2 March 2026 is refused the broad `accounting.transactions`, an older one keeps it until
/// Xero retires it.
pub fn scopes_for_set(tenant: &Tenant, provider: Provider, xero: XeroScopeSet) -> Vec<String> {
    let write = tenant.plan != Plan::Starter;
    let mut scopes: Vec<String> = match tenant.config.scopes.get(&provider) {
        Some(custom) => custom.clone(),
        None => {
            let list: &[&str] = match (provider, write) {
                // QuickBooks has no read-only accounting scope.
                (Provider::QuickBooks, _) => &["com.intuit.quickbooks.accounting"],
                // The report scopes serve report jobs (crate::reports): the broad
                // `accounting.reports.read`, or the granular names, which only third parties
                // document (unconfirmed; see crate::reports::job::report_scopes).
                (Provider::Xero, true) if xero == XeroScopeSet::Broad => {
                    &["accounting.transactions", "accounting.contacts", "accounting.settings.read", "accounting.reports.read"]
                }
                (Provider::Xero, false) if xero == XeroScopeSet::Broad => {
                    &["accounting.transactions.read", "accounting.contacts.read", "accounting.settings.read", "accounting.reports.read"]
                }
                (Provider::Xero, true) => &[
                    "accounting.invoices",
                    "accounting.payments",
                    "accounting.contacts",
                    "accounting.settings.read",
                    "accounting.reports.profitandloss.read",
                    "accounting.reports.balancesheet.read",
                    "accounting.reports.aged.read",
                ],
                (Provider::Xero, false) => &[
                    "accounting.invoices.read",
                    "accounting.payments.read",
                    "accounting.contacts.read",
                    "accounting.settings.read",
                    "accounting.reports.profitandloss.read",
                    "accounting.reports.balancesheet.read",
                    "accounting.reports.aged.read",
                ],
                (Provider::Zoho, true) => &[
                    "ZohoBooks.invoices.ALL",
                    "ZohoBooks.contacts.ALL",
                    "ZohoBooks.customerpayments.ALL",
                    "ZohoBooks.bills.ALL",
                    "ZohoBooks.accountants.READ",
                    "ZohoBooks.settings.READ",
                    // Unconfirmed scope name (crate::reports::job::report_scopes).
                    "ZohoBooks.reports.READ",
                ],
                (Provider::Zoho, false) => &[
                    "ZohoBooks.invoices.READ",
                    "ZohoBooks.contacts.READ",
                    "ZohoBooks.customerpayments.READ",
                    "ZohoBooks.bills.READ",
                    "ZohoBooks.accountants.READ",
                    "ZohoBooks.settings.READ",
                    // Unconfirmed scope name (crate::reports::job::report_scopes).
                    "ZohoBooks.reports.READ",
                ],
            };
            let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            add_entity_scopes(&mut list, tenant, provider, xero, write);
            list
        }
    };
    let required: &[&str] = match provider {
        Provider::Xero => &["offline_access"],
        Provider::Zoho => &["ZohoBooks.settings.CREATE", "ZohoBooks.settings.DELETE"],
        Provider::QuickBooks => &[],
    };
    // Zoho keeps credit notes and vendor credits in two modules with scopes of their own
    // (`creditnotes`, and `debitnotes` for vendor credits): asked for only when a tenant enables them.
    let credit_notes: &[&str] = match (provider, write) {
        (Provider::Zoho, true) => &["ZohoBooks.creditnotes.ALL", "ZohoBooks.debitnotes.ALL"],
        (Provider::Zoho, false) => &["ZohoBooks.creditnotes.READ", "ZohoBooks.debitnotes.READ"],
        _ => &[],
    };
    let extra = if tenant.config.enabled_entities.contains(&Entity::CreditNote) && !tenant.config.scopes.contains_key(&provider) {
        credit_notes
    } else {
        &[]
    };
    // Zoho's vendor payments are a module of their own too (`vendorpayments`).
    let bill_payments: &[&str] = match (provider, write) {
        (Provider::Zoho, true) => &["ZohoBooks.vendorpayments.ALL"],
        (Provider::Zoho, false) => &["ZohoBooks.vendorpayments.READ"],
        _ => &[],
    };
    let payments_extra = if tenant.config.enabled_entities.contains(&Entity::BillPayment) && !tenant.config.scopes.contains_key(&provider) {
        bill_payments
    } else {
        &[]
    };
    // And purchase orders (`purchaseorders`).
    let purchase_orders: &[&str] = match (provider, write) {
        (Provider::Zoho, true) => &["ZohoBooks.purchaseorders.ALL"],
        (Provider::Zoho, false) => &["ZohoBooks.purchaseorders.READ"],
        _ => &[],
    };
    let orders_extra = if tenant.config.enabled_entities.contains(&Entity::PurchaseOrder) && !tenant.config.scopes.contains_key(&provider) {
        purchase_orders
    } else {
        &[]
    };
    // Zoho journals are under the `accountants` module, read-only in the plan's list: a tenant that
    // enables journals on a plan that writes asks to write them too.
    let journals_extra: &[&str] = match (provider, write) {
        (Provider::Zoho, true)
            if tenant.config.enabled_entities.contains(&Entity::Journal) && !tenant.config.scopes.contains_key(&provider) =>
        {
            &["ZohoBooks.accountants.ALL"]
        }
        _ => &[],
    };
    // Zoho's expenses are a module of their own (`expenses`); bank transactions are `banking`.
    let banking: &[&str] = match (provider, write) {
        (Provider::Zoho, true) => &["ZohoBooks.expenses.ALL", "ZohoBooks.banking.ALL"],
        (Provider::Zoho, false) => &["ZohoBooks.expenses.READ", "ZohoBooks.banking.READ"],
        _ => &[],
    };
    let banking_extra =
        if tenant.config.enabled_entities.contains(&Entity::BankTransaction) && !tenant.config.scopes.contains_key(&provider) {
            banking
        } else {
            &[]
        };
    for r in extra.iter().chain(payments_extra).chain(orders_extra).chain(journals_extra).chain(banking_extra).chain(required) {
        if !scopes.iter().any(|s| s == r) {
            scopes.push(r.to_string());
        }
    }
    scopes
}

/// Adds, for each enabled entity the plan's list does not serve, the scope that does (Xero: the
/// granular or broad name of this deployment, `.read` on read-only plans), so enabling an entity is
/// enough for the next connect to ask for it.
fn add_entity_scopes(list: &mut Vec<String>, tenant: &Tenant, provider: Provider, xero: XeroScopeSet, write: bool) {
    if provider != Provider::Xero {
        // QuickBooks has one scope; Zoho's default list already names every module the entities use.
        return;
    }
    for entity in &tenant.config.enabled_entities {
        let serving = xero_entity_scopes(*entity);
        if list.iter().any(|s| serving.contains(&s.as_str())) {
            continue;
        }
        // Lists are (granular, granular.read[, broad, broad.read]).
        let base = if xero == XeroScopeSet::Broad && serving.len() > 2 { 2 } else { 0 };
        let name = serving[base + usize::from(!write)].to_string();
        if !list.contains(&name) {
            list.push(name);
        }
    }
}

/// Xero scopes that serve an entity; any one of them is enough. Granular first, then the broad
/// pre-March-2026 ones (Xero's scopes page; the granular/broad mapping per endpoint follows Xero's
/// 2026 migration notes).
fn xero_entity_scopes(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Invoice => &["accounting.invoices", "accounting.invoices.read", "accounting.transactions", "accounting.transactions.read"],
        Entity::Payment => &["accounting.payments", "accounting.payments.read", "accounting.transactions", "accounting.transactions.read"],
        Entity::Bill => &["accounting.invoices", "accounting.invoices.read", "accounting.transactions", "accounting.transactions.read"],
        Entity::Company => &["accounting.settings", "accounting.settings.read"],
        // Purchase orders under the invoices scope (unconfirmed: Xero's granular scope table lists
        // PurchaseOrders with invoices).
        Entity::PurchaseOrder => {
            &["accounting.invoices", "accounting.invoices.read", "accounting.transactions", "accounting.transactions.read"]
        }
        Entity::BillPayment => {
            &["accounting.payments", "accounting.payments.read", "accounting.transactions", "accounting.transactions.read"]
        }
        // Xero's CreditNotes endpoint sits under the invoices scope (Xero's granular scope table).
        Entity::CreditNote => {
            &["accounting.invoices", "accounting.invoices.read", "accounting.transactions", "accounting.transactions.read"]
        }
        Entity::TaxRate => &["accounting.settings", "accounting.settings.read"],
        // accounting.invoices serves Items too (Xero's 2026 notes); settings is what every plan asks for.
        Entity::Item => &["accounting.settings", "accounting.settings.read"],
        Entity::TrackingCategory => &["accounting.settings", "accounting.settings.read"],
        Entity::Journal => {
            &["accounting.manualjournals", "accounting.manualjournals.read", "accounting.transactions", "accounting.transactions.read"]
        }
        Entity::Contact => &["accounting.contacts", "accounting.contacts.read"],
        Entity::Account => &["accounting.settings", "accounting.settings.read"],
        // BankTransactions and BankTransfers: accounting.banktransactions in the granular set
        // (Xero's 2026 scope notes; that BankTransfers sits under it too is unconfirmed),
        // accounting.transactions before (xero_accounting.yaml).
        Entity::BankTransaction => {
            &["accounting.banktransactions", "accounting.banktransactions.read", "accounting.transactions", "accounting.transactions.read"]
        }
    }
}

/// Refuses a token whose granted scopes cannot serve the tenant's enabled entities, naming the
/// scopes that are missing (as we would have asked for them). Only Xero is checked: QuickBooks has
/// one accounting scope, and Zoho reports no granted scopes in its token response.
pub fn check_granted_scopes(tenant: &Tenant, provider: Provider, granted: &[String], xero: XeroScopeSet) -> Result<()> {
    if provider != Provider::Xero || granted.is_empty() {
        return Ok(());
    }
    let asked = scopes_for_set(tenant, provider, xero);
    let mut missing: Vec<String> = Vec::new();
    for entity in &tenant.config.enabled_entities {
        let serving = xero_entity_scopes(*entity);
        if granted.iter().any(|g| serving.contains(&g.as_str())) {
            continue;
        }
        let name = asked
            .iter()
            .find(|a| serving.contains(&a.as_str()))
            .cloned()
            .unwrap_or_else(|| serving[if xero == XeroScopeSet::Broad && serving.len() > 2 { 3 } else { 1 }].to_string());
        let entry = format!("{name} ({})", entity_label(*entity));
        if !missing.contains(&entry) {
            missing.push(entry);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::InsufficientScope { provider, missing: missing.join(", ") })
    }
}

fn entity_label(e: Entity) -> &'static str {
    match e {
        Entity::Invoice => "invoices",
        Entity::Contact => "contacts",
        Entity::Account => "accounts",
        Entity::Payment => "payments",
        Entity::Bill => "bills",
        Entity::Company => "company",
        Entity::CreditNote => "credit notes",
        Entity::BillPayment => "bill payments",
        Entity::TaxRate => "tax rates",
        Entity::Item => "items",
        Entity::TrackingCategory => "tracking categories",
        Entity::Journal => "journals",
        Entity::PurchaseOrder => "purchase orders",
        Entity::BankTransaction => "bank transactions",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::TenantConfig;
    use chrono::Utc;

    fn tenant(plan: Plan) -> Tenant {
        let cfg = TenantConfig { return_urls: vec!["https://app.example.com/integrations".into()], ..Default::default() };
        Tenant::new("t-1", "Acme", plan, cfg, Utc::now())
    }

    #[test]
    fn plan_scopes_read_only_for_starter_and_required_scopes_are_always_there() {
        let starter = scopes_for(&tenant(Plan::Starter), Provider::Xero);
        assert!(starter.contains(&"accounting.invoices.read".to_string()));
        assert!(!starter.contains(&"accounting.invoices".to_string()));
        assert!(starter.contains(&"offline_access".to_string()));
        let pro = scopes_for(&tenant(Plan::Professional), Provider::Xero);
        assert!(pro.contains(&"accounting.invoices".to_string()));
        let mut custom = tenant(Plan::Enterprise);
        custom.config.scopes.insert(Provider::Xero, vec!["accounting.contacts.read".into()]);
        assert_eq!(scopes_for(&custom, Provider::Xero), vec!["accounting.contacts.read", "offline_access"]);
        custom.config.scopes.insert(Provider::Zoho, vec!["ZohoBooks.invoices.READ".into()]);
        let z = scopes_for(&custom, Provider::Zoho);
        assert!(z.contains(&"ZohoBooks.settings.CREATE".to_string()) && z.contains(&"ZohoBooks.settings.DELETE".to_string()));
        assert_eq!(scopes_for(&tenant(Plan::Starter), Provider::QuickBooks), vec!["com.intuit.quickbooks.accounting"]);
    }

    /// Zoho keeps credit notes and vendor credits in modules of their own: a tenant that enables
    /// credit notes asks for both (read-only on Starter), one that does not asks for neither.
    #[test]
    fn zoho_credit_note_scopes_follow_the_enabled_entity() {
        let mut t = tenant(Plan::Starter);
        let without = scopes_for(&t, Provider::Zoho);
        assert!(!without.iter().any(|s| s.contains("creditnotes") || s.contains("debitnotes")), "{without:?}");
        t.config.enabled_entities.push(Entity::CreditNote);
        let with = scopes_for(&t, Provider::Zoho);
        assert_eq!(with.len(), without.len() + 2);
        assert!(with.contains(&"ZohoBooks.creditnotes.READ".to_string()) && with.contains(&"ZohoBooks.debitnotes.READ".to_string()));
        t.plan = Plan::Enterprise;
        assert!(scopes_for(&t, Provider::Zoho).contains(&"ZohoBooks.debitnotes.ALL".to_string()));
        assert_eq!(scopes_for(&t, Provider::Xero), scopes_for(&tenant(Plan::Enterprise), Provider::Xero), "Xero's are the invoices scopes");
    }

    #[test]
    fn default_scopes_serve_every_report_in_either_xero_vocabulary() {
        use crate::reports::job::report_scopes;
        use crate::reports::ReportKind;
        for plan in [Plan::Starter, Plan::Professional] {
            let t = tenant(plan);
            for (provider, set) in [
                (Provider::QuickBooks, XeroScopeSet::Granular),
                (Provider::Xero, XeroScopeSet::Granular),
                (Provider::Xero, XeroScopeSet::Broad),
                (Provider::Zoho, XeroScopeSet::Granular),
            ] {
                let asked = scopes_for_set(&t, provider, set);
                for kind in [ReportKind::ProfitAndLoss, ReportKind::BalanceSheet, ReportKind::AgedReceivables] {
                    assert!(
                        report_scopes(provider, kind).iter().any(|n| asked.iter().any(|a| a == n)),
                        "{provider:?} {set:?} {plan:?}: {kind:?} not covered by {asked:?}"
                    );
                }
            }
        }
    }

    /// Enabling an entity is enough: what the connect asks for serves every enabled entity, in
    /// either Xero vocabulary and on read-only plans too.
    #[test]
    fn asked_scopes_serve_every_enabled_entity() {
        use crate::providers::model::Entity as M;
        let all: Vec<Entity> = M::ALL
            .iter()
            .map(|m| serde_json::from_value(serde_json::to_value(m).unwrap()).expect("the same names in both enums"))
            .collect();
        for plan in [Plan::Starter, Plan::Professional] {
            let mut t = tenant(plan);
            t.config.enabled_entities = all.clone();
            for set in [XeroScopeSet::Granular, XeroScopeSet::Broad] {
                let asked = scopes_for_set(&t, Provider::Xero, set);
                check_granted_scopes(&t, Provider::Xero, &asked, set).unwrap_or_else(|e| panic!("{plan:?} {set:?}: {e}"));
            }
        }
    }

    /// Bank transactions need Xero's bank transactions scope (granular; the broad vocabulary's
    /// accounting.transactions serves them) and Zoho's expenses and banking modules.
    #[test]
    fn enabling_bank_transactions_asks_for_their_scopes() {
        let mut t = tenant(Plan::Starter);
        assert!(!scopes_for(&t, Provider::Xero).iter().any(|s| s.starts_with("accounting.banktransactions")));
        t.config.enabled_entities.push(Entity::BankTransaction);
        assert!(scopes_for(&t, Provider::Xero).contains(&"accounting.banktransactions.read".to_string()));
        let zoho = scopes_for(&t, Provider::Zoho);
        assert!(
            zoho.iter().any(|s| s.starts_with("ZohoBooks.expenses.")) && zoho.iter().any(|s| s.starts_with("ZohoBooks.banking.")),
            "{zoho:?}"
        );
        let e = check_granted_scopes(&t, Provider::Xero, &["accounting.settings.read".to_string()], XeroScopeSet::Granular).unwrap_err();
        assert!(e.to_string().contains("accounting.banktransactions"), "{e}");
    }

    /// Journals need Xero's manual journals scope, which no plan list names: enabling them adds it
    /// (the read-only one on Starter); the broad vocabulary's accounting.transactions serves them.
    #[test]
    fn enabling_journals_asks_for_the_manual_journals_scope() {
        for (plan, want) in [(Plan::Professional, "accounting.manualjournals"), (Plan::Starter, "accounting.manualjournals.read")] {
            let mut t = tenant(plan);
            assert!(!scopes_for(&t, Provider::Xero).iter().any(|s| s.starts_with("accounting.manualjournals")));
            t.config.enabled_entities.push(Entity::Journal);
            assert!(scopes_for(&t, Provider::Xero).contains(&want.to_string()), "{plan:?}");
            assert!(!scopes_for_set(&t, Provider::Xero, XeroScopeSet::Broad).iter().any(|s| s.starts_with("accounting.manualjournals")));
        }
    }

    #[test]
    fn xero_scope_set_follows_the_deployment_and_granted_scopes_are_checked() {
        let pro = tenant(Plan::Professional);
        assert_eq!(
            scopes_for_set(&pro, Provider::Xero, XeroScopeSet::Broad),
            vec!["accounting.transactions", "accounting.contacts", "accounting.settings.read", "accounting.reports.read", "offline_access"]
        );
        assert_eq!(scopes_for_set(&pro, Provider::Xero, XeroScopeSet::Granular), scopes_for(&pro, Provider::Xero));
        assert!(!scopes_for(&pro, Provider::Xero).iter().any(|s| s.starts_with("accounting.transactions")));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // What we ask for is always enough, in either vocabulary.
        for set in [XeroScopeSet::Granular, XeroScopeSet::Broad] {
            for plan in [Plan::Starter, Plan::Professional] {
                let t = tenant(plan);
                check_granted_scopes(&t, Provider::Xero, &scopes_for_set(&t, Provider::Xero, set), set).unwrap();
            }
        }
        // A grant without invoices or payments is refused, naming what is missing.
        let granted = s(&["offline_access", "accounting.contacts", "accounting.settings.read"]);
        let e = check_granted_scopes(&pro, Provider::Xero, &granted, XeroScopeSet::Granular).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InsufficientScope);
        assert_eq!(e.http_status(), 403);
        let m = e.to_string();
        assert!(m.contains("accounting.invoices (invoices)") && m.contains("accounting.payments (payments)"), "{m}");
        let e = check_granted_scopes(&pro, Provider::Xero, &granted, XeroScopeSet::Broad).unwrap_err();
        assert!(e.to_string().contains("accounting.transactions (invoices)"), "{e}");
        // Only the enabled entities count; a broad scope serves a granular deployment too.
        let mut contacts_only = tenant(Plan::Professional);
        contacts_only.config.enabled_entities = vec![Entity::Contact];
        check_granted_scopes(&contacts_only, Provider::Xero, &granted, XeroScopeSet::Granular).unwrap();
        check_granted_scopes(
            &pro,
            Provider::Xero,
            &s(&["accounting.transactions.read", "accounting.contacts.read", "accounting.settings.read"]),
            XeroScopeSet::Granular,
        )
        .unwrap();
        // Other providers and tokens that report no scopes are not checked.
        check_granted_scopes(&pro, Provider::Zoho, &granted, XeroScopeSet::Granular).unwrap();
        check_granted_scopes(&pro, Provider::Xero, &[], XeroScopeSet::Granular).unwrap();
    }
}
