# ctest script: install BUILD_DIR into a fresh prefix, then configure, build and run the
# downstream project against it. Fails on the first step that fails.
#   cmake -DBUILD_DIR=… -DSOURCE_DIR=… -DWORK_DIR=… [-DGENERATOR=…] -P check_install.cmake
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()
step(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
set(gen)
if(GENERATOR)
  set(gen -G ${GENERATOR})
endif()
# pkg_check_modules searches CMAKE_PREFIX_PATH, so the installed hostq.pc is the one found.
step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build ${gen} -DCMAKE_PREFIX_PATH=${prefix}
     -DCMAKE_BUILD_TYPE=Debug)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/build -j2)
foreach(exe downstream_cmake downstream_pkgconfig)
  step(${WORK_DIR}/build/${exe})
  if(NOT step_output MATCHES "downstream ok")
    message(FATAL_ERROR "${exe} printed: ${step_output}")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "installed package works for find_package and pkg-config")
