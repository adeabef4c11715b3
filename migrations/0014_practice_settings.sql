-- Practice settings are a closed, typed set (domain::practice::PracticeSettings).
--
-- Until now `practice.settings` took any JSON object, and the installation read one key of it,
-- `demo`, with a cast: one practice storing {"demo": "x"} stopped `serve`, `audit verify`,
-- `practice list` and every job for all practices. The demo marker becomes a column only the
-- owner role's seeding writes, unknown keys are dropped, and a check constraint keeps the
-- column to the shape the application writes, so no stored row can stop a reader.

alter table practice add column demo boolean not null default false;

alter table practice no force row level security;
update practice
   set demo = coalesce(settings -> 'demo' = 'true'::jsonb, false),
       settings = jsonb_build_object(
           'clinical_scope',
           case when settings -> 'clinical_scope' = '"practice"'::jsonb then 'practice' else 'care_team' end);
alter table practice force row level security;

alter table practice drop constraint if exists practice_settings_check;
alter table practice add constraint practice_settings_shape check (
    jsonb_typeof(settings) = 'object'
    and settings - 'clinical_scope' = '{}'::jsonb
    and (not settings ? 'clinical_scope'
         or settings -> 'clinical_scope' in ('"care_team"'::jsonb, '"practice"'::jsonb)));

alter table practice alter column settings set default '{"clinical_scope": "care_team"}'::jsonb;
