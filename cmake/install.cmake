# Installs libhostq with a CMake package (find_package(hostq) → hostq::hostq) and a pkg-config file.
# Public headers are include/hostq/ and the generated hostq/version.hpp; libhostq_shm.a is
# installed for the static link only (no headers), the embedded PostgreSQL not at all.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS hostq hostq_shm hostq_common_headers EXPORT hostqTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS hostq-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/hostq DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(FILES ${HOSTQ_GENERATED_INCLUDE}/hostq/version.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hostq)
install(EXPORT hostqTargets NAMESPACE hostq:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/hostq)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hostqConfig.cmake.in
  ${PROJECT_BINARY_DIR}/hostqConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/hostq)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/hostqConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/hostqConfig.cmake ${PROJECT_BINARY_DIR}/hostqConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/hostq)
# Relocatable: the prefix is found from the .pc file's own place (${pcfiledir}), so
# `cmake --install build --prefix X` works without reconfiguring with CMAKE_INSTALL_PREFIX=X.
file(RELATIVE_PATH HOSTQ_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" HOSTQ_PC_TO_PREFIX "${HOSTQ_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/hostq.pc.in ${PROJECT_BINARY_DIR}/hostq.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/hostq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
