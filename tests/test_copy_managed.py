"""Rows of managed tables that copied tables reference: `auth.users` behind `public.profiles.id`, as in
every Supabase project, copied by `copy --all` with password hashes and tokens masked."""

from __future__ import annotations

from copyhelp import same

from replicator.copy import copy_tables

SUPABASE_SHAPED = """
CREATE SCHEMA auth;
CREATE TABLE auth.users (
    instance_id uuid, id uuid NOT NULL PRIMARY KEY, aud varchar(255), role varchar(255), email varchar(255),
    encrypted_password varchar(255), email_confirmed_at timestamptz, confirmation_token varchar(255),
    recovery_token varchar(255), email_change_token_new varchar(255), email_change_token_current varchar(255) DEFAULT '',
    phone_change_token varchar(255) DEFAULT '', reauthentication_token varchar(255) DEFAULT '',
    raw_app_meta_data jsonb, raw_user_meta_data jsonb, created_at timestamptz, updated_at timestamptz);
CREATE TABLE auth.sessions (id uuid PRIMARY KEY, user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE);
CREATE TABLE public.profiles (id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE, username text UNIQUE);
CREATE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN INSERT INTO public.profiles (id, username) VALUES (NEW.id, NEW.raw_user_meta_data ->> 'username'); RETURN NEW; END $$;
CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();
"""

USERS = """
SET session_replication_role = replica;
INSERT INTO auth.users (id, aud, role, email, encrypted_password, confirmation_token, recovery_token,
                        email_change_token_new, raw_user_meta_data, created_at)
SELECT md5(i::text)::uuid, 'authenticated', 'authenticated', 'user' || i || '@example.com',
       '$2a$10$' || md5('pw' || i), CASE WHEN i % 2 = 0 THEN md5('c' || i) END, '', NULL,
       jsonb_build_object('username', 'user' || i), '2024-01-01'
FROM generate_series(1, 40) i;
INSERT INTO auth.sessions SELECT md5('s' || i)::uuid, md5(i::text)::uuid FROM generate_series(1, 10) i;
INSERT INTO public.profiles SELECT md5(i::text)::uuid, 'user' || i FROM generate_series(1, 40) i;
"""


def test_all_copies_referenced_auth_users_with_secrets_masked(master_url, replica_url, sql_on):
    for url in (master_url, replica_url):
        sql_on(url, SUPABASE_SHAPED)
    sql_on(master_url, USERS)
    res = copy_tables(master_url, replica_url, all_tables=True)
    order = [t.table for t in res.tables]
    assert order == ["auth.users", "public.profiles"]  # sessions are not referenced by public: left alone
    users = res.table("auth.users")
    assert set(users.masked_columns) == {"encrypted_password", "confirmation_token", "recovery_token",
                                         "email_change_token_new", "email_change_token_current",
                                         "phone_change_token", "reauthentication_token"}
    assert res.orphans == []
    assert same(sql_on, master_url, replica_url, "profiles")
    # the trigger that creates a profile per new user did not fire on copied users
    assert sql_on(replica_url, "SELECT count(*) FROM profiles") == [(40,)]
    # no credential reaches the replica; NULL stays NULL, the rest is the master's
    assert sql_on(replica_url, "SELECT count(*) FROM auth.users WHERE encrypted_password <> '' "
                               "OR confirmation_token <> '' OR recovery_token <> ''") == [(0,)]
    assert sql_on(replica_url, "SELECT count(*) FILTER (WHERE confirmation_token IS NULL), "
                               "count(*) FILTER (WHERE email_change_token_new IS NULL) FROM auth.users") == [(20, 40)]
    cols = "id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at"
    assert same(sql_on, master_url, replica_url, "auth.users", cols)
    # a second run compares the masked values with the masked values: nothing to do
    again = copy_tables(master_url, replica_url, all_tables=True, policy="master-wins")
    assert all((t.inserted, t.updated) == (0, 0) for t in again.tables)
