# vmgroup_unit_test(NAME src... LIBS lib...): a GoogleTest binary beside the code
# it tests, labelled "unit" (fast, no QEMU; also run under the sanitizers).
# Both functions declare nothing when BUILD_TESTING is off: each folder names
# its tests unconditionally, and this is the one place that switch is read.
function(vmgroup_unit_test name)
  if(NOT BUILD_TESTING)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest_main GTest::gmock)
  gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
endfunction()

# vmgroup_integration_test(NAME src... LIBS lib...): runs real QEMU; labelled
# "integration". Run one at a time (RUN_SERIAL): they share two cores.
function(vmgroup_integration_test name)
  if(NOT BUILD_TESTING)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest_main GTest::gmock)
  gtest_discover_tests(${name} PROPERTIES LABELS integration RUN_SERIAL TRUE TIMEOUT 600
                       DISCOVERY_TIMEOUT 60)
endfunction()
