# Installs libhostq with a CMake package (find_package(hostq) → hostq::hostq) and a pkg-config file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS hostq hostq_shm EXPORT hostqTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS hostq-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/hostq DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/shm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(EXPORT hostqTargets NAMESPACE hostq:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/hostq)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hostqConfig.cmake.in
  ${PROJECT_BINARY_DIR}/hostqConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/hostq)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/hostqConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/hostqConfig.cmake ${PROJECT_BINARY_DIR}/hostqConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/hostq)
configure_file(${PROJECT_SOURCE_DIR}/cmake/hostq.pc.in ${PROJECT_BINARY_DIR}/hostq.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/hostq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
