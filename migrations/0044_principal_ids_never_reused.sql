-- Principal ids are never reused (req AC-01).
--
-- An account is never deleted, its id never changes, and a deactivated account never becomes
-- active again: deactivation is final, and the same email gets a new account with a new id
-- (the partial unique index `app_user_active_email_key` lets it). So an id in an audit row, a
-- signature or a grant names one principal forever. The refusal holds for the owner role too
-- (only a superuser disabling triggers gets past it, as for the audit tables).

create function app.reject_principal_reuse() returns trigger
    language plpgsql
    as $$
begin
    if tg_op in ('DELETE', 'TRUNCATE') then
        raise exception 'accounts are never deleted: deactivate the account instead'
            using errcode = 'restrict_violation', constraint = 'app_user_never_reused';
    end if;
    if new.user_id <> old.user_id then
        raise exception 'an account id never changes'
            using errcode = 'restrict_violation', constraint = 'app_user_never_reused';
    end if;
    if old.status = 'deactivated' and new.status <> 'deactivated' then
        raise exception 'a deactivated account stays deactivated: create a new account (it gets a new id)'
            using errcode = 'restrict_violation', constraint = 'app_user_never_reused';
    end if;
    return new;
end
$$;

create trigger app_user_never_reused before update or delete on app_user
    for each row execute function app.reject_principal_reuse();
create trigger app_user_no_truncate before truncate on app_user
    for each statement execute function app.reject_principal_reuse();
