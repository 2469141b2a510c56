# Run by `cmake --install` (and by cpack, which installs with the prefix /usr): writes the
# systemd units with this install's paths, the sysusers.d and tmpfiles.d files, and the sample
# configuration as the service's configuration file. At install time, not configure time,
# because cpack installs with another prefix than the build folder was configured with.
# Expects B24ES_SOURCE_DIR and B24ES_BINARY_DIR (set by install(CODE) in CMakeLists.txt).

set(prefix "${CMAKE_INSTALL_PREFIX}")
# GNUInstallDirs' rule: the prefix /usr keeps its configuration in /etc, any other in PREFIX/etc.
if(prefix STREQUAL "/usr")
  set(B24ES_SYSCONFDIR "/etc")
else()
  set(B24ES_SYSCONFDIR "${prefix}/etc")
endif()
set(B24ES_BINDIR "${prefix}/bin")
set(B24ES_DOCDIR "${prefix}/share/doc/b24-event-store")

set(staged "${B24ES_BINARY_DIR}/install-staged")
file(MAKE_DIRECTORY "${staged}")
foreach(unit b24-event-store.service b24-event-store-refresh.service b24-event-store-refresh.timer)
  configure_file("${B24ES_SOURCE_DIR}/scripts/systemd/${unit}" "${staged}/${unit}" @ONLY)
endforeach()
file(INSTALL DESTINATION "${prefix}/lib/systemd/system" TYPE FILE
     FILES "${staged}/b24-event-store.service" "${staged}/b24-event-store-refresh.service"
           "${staged}/b24-event-store-refresh.timer")
file(INSTALL DESTINATION "${prefix}/lib/sysusers.d" TYPE FILE
     FILES "${B24ES_SOURCE_DIR}/scripts/systemd/b24-event-store.sysusers"
     RENAME b24-event-store.conf)
file(INSTALL DESTINATION "${prefix}/lib/tmpfiles.d" TYPE FILE
     FILES "${B24ES_SOURCE_DIR}/scripts/systemd/b24-event-store.tmpfiles"
     RENAME b24-event-store.conf)

# The sample, with the database where the service's state lives (tmpfiles.d, StateDirectory=).
file(READ "${B24ES_SOURCE_DIR}/b24-event-store.properties.example" sample)
string(REGEX REPLACE "\ndb.path = [^\n]*" "\ndb.path = /var/lib/b24-event-store/events.db"
       properties "${sample}")
if(properties STREQUAL sample)
  message(FATAL_ERROR "the sample configuration has no db.path line to point at /var/lib")
endif()
file(WRITE "${staged}/b24-event-store.properties" "${properties}")
file(INSTALL DESTINATION "${B24ES_SYSCONFDIR}/b24-event-store" TYPE FILE
     FILES "${staged}/b24-event-store.properties")
