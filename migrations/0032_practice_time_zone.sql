-- A practice's time zone (`settings.time_zone`, an IANA name checked by the application):
-- online booking's hours and the times in messages to clients are in it. The settings shape
-- check (migration 0014) admits the new key as a short name of the IANA alphabet.
alter table practice drop constraint practice_settings_shape;
alter table practice add constraint practice_settings_shape check (
    jsonb_typeof(settings) = 'object'
    and settings - 'clinical_scope' - 'time_zone' = '{}'::jsonb
    and (not settings ? 'clinical_scope'
         or settings -> 'clinical_scope' in ('"care_team"'::jsonb, '"practice"'::jsonb))
    and (not settings ? 'time_zone'
         or (jsonb_typeof(settings -> 'time_zone') = 'string'
             and settings ->> 'time_zone' ~ '^[A-Za-z0-9_+/-]{1,64}$')));
