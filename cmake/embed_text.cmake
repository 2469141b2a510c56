# Generates a C++ source with one function returning a file's text, so that the binary serves
# documents kept in the repository (server/query/openapi.json) from any working directory. Run by
# add_custom_command with -DINPUT=<file> -DOUTPUT=<file.cpp> -DHEADER=<name.h> -DFUNCTION=<name>.
file(READ "${INPUT}" text)
get_filename_component(name "${INPUT}" NAME)
file(WRITE "${OUTPUT}.tmp" "// Generated from ${name} by cmake/embed_text.cmake. Do not edit.
#include \"${HEADER}\"

namespace b24es {

const std::string& ${FUNCTION}() {
  static const std::string text = R\"b24es_text(${text})b24es_text\";
  return text;
}

}  // namespace b24es
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
