-- The clinical visibility helpers in PL/pgSQL, with the same queries and results.
--
-- As SQL functions that can never be inlined (SECURITY DEFINER, or a body with sub-selects),
-- PostgreSQL parsed and planned their bodies again in every statement that called them: the
-- note and perio policies, and the clinical audit insert. PL/pgSQL keeps each query's plan for
-- the life of the connection. Conditions without sub-selects run as PL/pgSQL simple
-- expressions, and each function stops at the first arm that decides.

create or replace function app.care_team(p_patient uuid) returns boolean
    language plpgsql stable security definer
    set search_path = pg_catalog, public
    as $$
    begin
        return exists (select 1 from public.patient p
                        where p.practice_id = app.practice() and p.patient_id = p_patient
                          and p.assigned_clinician_id = app.actor())
            or exists (select 1 from public.visit v
                        where v.practice_id = app.practice() and v.patient_id = p_patient
                          and v.clinician_id = app.actor())
            or exists (select 1 from public.appointment a
                        where a.practice_id = app.practice() and a.patient_id = p_patient
                          and a.clinician_id = app.actor() and a.status <> 'cancelled');
    end
    $$;

create or replace function app.break_glass_grant(p_patient uuid) returns uuid
    language plpgsql stable security definer
    set search_path = pg_catalog, public
    as $$
    declare
        v_grant uuid;
    begin
        select b.grant_id into v_grant from public.break_glass b
         where b.practice_id = app.practice() and b.user_id = app.actor()
           and b.patient_id = p_patient and b.opened_at <= app.now() and b.expires_at > app.now()
         order by b.expires_at desc limit 1;
        return v_grant;
    end
    $$;

create or replace function app.practice_wide_clinical() returns boolean
    language plpgsql stable security definer
    set search_path = pg_catalog, public
    as $$
    begin
        return coalesce((select p.settings->>'clinical_scope' = 'practice'
                           from public.practice p where p.practice_id = app.practice()), false);
    end
    $$;

create or replace function app.clinical_visible(p_patient uuid) returns boolean
    language plpgsql stable parallel safe
    as $$
    begin
        if p_patient is null or not (app.actor_roles() && array['clinician']) then
            return false;
        end if;
        if app.practice_wide_clinical() or app.care_team(p_patient)
           or app.break_glass_grant(p_patient) is not null then
            return true;
        end if;
        -- A clinical-scope support grant sees every patient of the practice (read-only).
        return coalesce((select g.scope = 'clinical'
                           from app.support_grant_for(app.practice(), app.actor(), app.now()) g),
                        false);
    end
    $$;

-- The same decision as before in a cheaper order: without an open break-glass (the common
-- case, one index probe) nothing is flagged, whatever else holds; with one, the access is
-- flagged unless the actor would see the patient anyway.
create or replace function app.clinical_audit_details(p_details jsonb, p_patient uuid) returns jsonb
    language plpgsql stable
    as $$
    declare
        v_grant uuid;
    begin
        if p_patient is null then
            return p_details;
        end if;
        v_grant := app.break_glass_grant(p_patient);
        if v_grant is null or app.practice_wide_clinical() or app.care_team(p_patient) then
            return p_details;
        end if;
        return coalesce(p_details, '{}'::jsonb)
               || jsonb_build_object('emergency', true, 'break_glass_id', v_grant);
    end
    $$;
