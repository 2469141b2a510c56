# Generates a C++ source holding every migration file, so that the binary carries its schema
# and works from any directory (cron jobs, systemd units). Run by add_custom_command with
# -DOUTPUT=<file.cpp> -DMIGRATIONS="a.sql;b.sql", and optionally -DFUNCTION=name -DHEADER=file.h
# (another backend's list: embeddedMigrations() of embedded_migrations.h by default).
if(NOT FUNCTION)
  set(FUNCTION embeddedMigrations)
endif()
if(NOT HEADER)
  set(HEADER embedded_migrations.h)
endif()
set(body "")
foreach(file IN LISTS MIGRATIONS)
  get_filename_component(name "${file}" NAME)
  string(REGEX MATCH "^[0-9]+" number "${name}")
  if(NOT number)
    message(FATAL_ERROR "migration ${name} does not start with its number")
  endif()
  math(EXPR version "${number}")
  file(READ "${file}" sql)
  string(APPEND body "      {${version}, \"${name}\", R\"b24es_sql(${sql})b24es_sql\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "// Generated from migrations/*.sql by cmake/embed_migrations.cmake. Do not edit.
#include \"${HEADER}\"

namespace b24es {

const std::vector<Migration>& ${FUNCTION}() {
  static const std::vector<Migration> migrations = {
${body}  };
  return migrations;
}

}  // namespace b24es
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
