--
-- readme_examples (issue 14): every ```sql block of README.md, extracted by
-- tools/readme_sql.pl and run in order, as written, in a database of its
-- own, as a superuser (the README's examples are what a DBA pastes into
-- psql).  An example that stops working, or whose output changes, changes
-- this test's output.
--
SELECT current_database() AS origdb \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS regression_qcache_readme;
DROP ROLE IF EXISTS app_reader;
DROP ROLE IF EXISTS app_writer;
RESET client_min_messages;
CREATE DATABASE regression_qcache_readme;
\c regression_qcache_readme
\! perl tools/readme_sql.pl README.md > results/readme_examples_run.sql
\i results/readme_examples_run.sql

\c :origdb
SET client_min_messages = warning;
DROP DATABASE regression_qcache_readme;
DROP ROLE app_reader;
DROP ROLE app_writer;
